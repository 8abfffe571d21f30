/*
 * nymvisor verifier plugin ABI, version 1.
 *
 * A plugin is a shared library exporting these four functions. nymvisor loads it with
 * dlopen(), checks nymvisor_plugin_abi_version() == 1, and for every candidate binary calls
 * nymvisor_plugin_verify() with a JSON request (see docs/PLUGINS.md), on a thread of its own,
 * with a timeout. The answer is a NUL-terminated JSON string allocated by the plugin:
 *   {"accept": true}                or   {"accept": false, "reason": "why"}
 * nymvisor copies it and hands it back to nymvisor_plugin_free(). The request belongs to
 * nymvisor and is valid only during the call. Calls never overlap for one plugin.
 * A plugin must not unwind (throw, longjmp, panic) across these functions.
 */
#ifndef NYMVISOR_PLUGIN_H
#define NYMVISOR_PLUGIN_H

#include <stdint.h>

#define NYMVISOR_PLUGIN_ABI_VERSION 1

uint32_t nymvisor_plugin_abi_version(void);
const char *nymvisor_plugin_name(void);
char *nymvisor_plugin_verify(const char *request_json);
void nymvisor_plugin_free(char *answer_json);

/*
 * Optional: a plugin that is also an upstream source (NYMVISOR_UPSTREAM_SOURCE=plugin:<name>,
 * where <name> is what nymvisor_plugin_name() returns) exports this. The request is
 * {"abiVersion":1,"daemon":"nym-node"}; the answer (freed with nymvisor_plugin_free) is the latest
 * upgrade-info.json document, or "null" when there is nothing to offer. Binary URLs in it may be
 * http(s) or file://.
 */
char *nymvisor_plugin_latest(const char *request_json);

#endif
