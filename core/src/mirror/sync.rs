//! One daemon's sync: find the newest release upstream, fetch and verify its binary in the
//! network helper (unless the mirror holds it unchanged), publish it, sign the feed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;
use time::OffsetDateTime;

use super::document::{MirrorFeed, binary_url, next_sequence, to_prune};
use super::state::{MirrorState, MirroredRelease};
use super::{LOCK_FILE, STATE_FILE, Signer};
use crate::config::Config;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::helper::{Helper, PollOutcome};
use crate::instance::Instance;
use crate::model::UpgradeInfo;
use crate::paths::NymvisorHome;
use crate::upgrade::pick_platform;
use crate::upgrade::policy::check_name;

/// Mode of every file the mirror publishes: a web server running as another user reads them.
const PUBLISHED_MODE: u32 = 0o644;

/// What a sync was asked to do.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The mirror directory.
    pub out: PathBuf,
    /// Absolute URL the mirror is served at (`None`: binary URLs relative to each feed).
    pub base_url: Option<String>,
    /// How long a signed feed stays valid (`--expires`).
    pub expires: Duration,
    /// How many releases per daemon stay in the mirror (`--keep`).
    pub keep: usize,
}

/// What a sync of one daemon did.
#[derive(Debug, Clone)]
pub struct Synced {
    pub daemon: String,
    pub name: String,
    pub version: String,
    /// Whether the binary was downloaded and verified (false: the mirror held it unchanged).
    pub downloaded: bool,
    pub sequence: u64,
    pub expires: OffsetDateTime,
    /// Key ids of the feed's signatures, in file order.
    pub signed_by: Vec<String>,
    /// Releases removed to keep `--keep`.
    pub pruned: Vec<String>,
    /// The feed document written.
    pub feed: PathBuf,
}

impl SyncOptions {
    /// Refuses options the nodes would refuse the result of.
    pub fn check(&self) -> Result<()> {
        if self.expires.is_zero() {
            return Err(Error::Setup(
                "--expires 0: every feed would be stale as soon as it is signed".into(),
            ));
        }
        if time::Duration::try_from(self.expires)
            .map_or(true, |d| d > crate::upgrade::freshness::MAX_VALIDITY)
        {
            return Err(Error::Setup(format!(
                "--expires {}: nodes refuse feeds valid for more than a year; sign for days and sync on a timer",
                humantime::format_duration(self.expires)
            )));
        }
        if let Some(base) = &self.base_url
            && !(base.starts_with("https://") || base.starts_with("http://"))
        {
            return Err(Error::Setup(format!(
                "--base-url {base:?}: give the http(s) URL the mirror directory is served at, such as https://mirror.example.org/nym"
            )));
        }
        Ok(())
    }
}

/// The settings a sync works from and the daemons it mirrors by default: instance `id`'s
/// effective configuration and its daemon, or the defaults with `env` applied and `DAEMON_NAME`
/// (else `nym-node`).
pub fn base_config(env: &Env, id: Option<&str>) -> Result<(Config, String)> {
    let config = match id {
        Some(id) => Instance::open(&env.clone().with("NYMVISOR_ID", id))?.config,
        None => Config::default().apply_env(env)?,
    };
    let daemon = match config.daemon.name.as_str() {
        "" => "nym-node".to_owned(),
        name => name.to_owned(),
    };
    Ok((config, daemon))
}

/// Takes the mirror's lock (created in `out`, which is created too): two syncs of one mirror
/// never run at once. A mirror directory that belongs to another user is refused (root
/// included): files written now would belong to this user, and the next sync as the mirror's
/// owner (its timer) could not replace them.
pub fn lock(out: &Path) -> Result<fsutil::FileLock> {
    if let Some((owner, me)) = crate::instance::owner::foreign_owner(out) {
        return Err(Error::NotOwner(format!(
            "the mirror {dir} belongs to {owner}, but this runs as {me}: files written now would belong to {me}, and the next sync as {owner} (its timer) could not replace them; run it as {owner}: sudo -u {owner} nymvisor mirror sync --out {dir} …",
            dir = out.display()
        )));
    }
    fsutil::create_dir_all(out)?;
    fsutil::FileLock::try_acquire(&out.join(LOCK_FILE)).map_err(|e| match e {
        Error::Locked { holder, .. } => Error::Setup(format!(
            "another `nymvisor mirror sync` is writing {}{}; try again when it is done",
            out.display(),
            holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
        )),
        other => other,
    })
}

/// The configuration a sync of `daemon` works with: `base` (an instance's, or the defaults with
/// the environment applied) for `daemon`, with its upgrade data in `work` and downloads allowed.
pub fn config_for(base: &Config, daemon: &str, work: &Path) -> Result<Config> {
    let mut config = base.clone();
    if !config.daemon.name.is_empty()
        && config.daemon.name != daemon
        && config.daemon.absolute_upstream_upgrade_url.is_some()
    {
        return Err(Error::Setup(format!(
            "the feed URL of this configuration (DAEMON_ABSOLUTE_UPSTREAM_UPGRADE_URL) is {}'s; it cannot be used for {daemon} (use NYMVISOR_UPSTREAM_BASE_UPGRADE_URL, or one sync per daemon)",
            config.daemon.name
        )));
    }
    config.daemon.name = daemon.to_owned();
    config.nymvisor.id = format!("mirror-{daemon}");
    // never created: a sync has no daemon, and nothing of an instance is touched
    config.daemon.home = work.join("no-daemon-home");
    config.nymvisor.upgrade_data_directory = Some(work.join("data"));
    config.daemon.allow_binaries_download = true;
    config.validated()
}

/// Syncs one daemon into `opts.out` (see the module docs of [`super`]). The caller holds
/// [`lock`]. `env` is the environment the network helper gets (the resolved one).
pub async fn sync_daemon(
    base: &Config,
    daemon: &str,
    env: &Env,
    opts: &SyncOptions,
    signers: &[Arc<dyn Signer>],
    now: OffsetDateTime,
) -> Result<Synced> {
    // whole seconds in the documents, as people write them
    let now = now.replace_nanosecond(0).unwrap_or(now);
    crate::names::validate_name(daemon)
        .map_err(|reason| Error::Setup(format!("--daemon {daemon:?}: {reason}")))?;
    let dir = opts.out.join(daemon);
    fsutil::create_dir_all(&dir)?;
    // the helper's staging, on the mirror's file system (the binary is renamed into place);
    // removed when done, whatever happened
    let work = tempfile::Builder::new()
        .prefix(".nymvisor-sync-")
        .tempdir_in(&opts.out)
        .map_err(|e| Error::io("failed to create a work directory in", &opts.out, e))?;
    let config = config_for(base, daemon, work.path())?;
    let inst = Instance::new(
        config,
        work.path().join("config.toml"),
        NymvisorHome::at_root(work.path().join("home")),
    );
    inst.check_sandbox_paths()?;
    let helper = Helper::new(Some(format!("the upstream of {daemon}")), &inst, env);
    let fail = |what: String| Error::Setup(format!("{daemon}: {what}"));

    let (info, document_url, document) = match helper.poll().await {
        PollOutcome::Found {
            upgrade,
            document_url,
            document,
        } => (upgrade.from_upstream(), document_url, document),
        PollOutcome::Nothing => return Err(fail("upstream offers no release".into())),
        PollOutcome::Failed { error, .. } => {
            return Err(fail(format!("upstream failed: {error}")));
        }
        PollOutcome::Refused { note } => return Err(fail(note)),
    };
    // an upstream that is itself a signed mirror must be fresh (the nodes would refuse it)
    if crate::upgrade::freshness::applies(&inst.config) {
        crate::upgrade::freshness::judge(&document_url, document.as_bytes(), None, now)
            .map_err(|why| fail(format!("{document_url}: {why}")))?;
    }
    check_name(&info.name).map_err(|r| fail(r.reason))?;
    // a release directory must never take the place of the mirror's own files
    if super::document::takes_a_mirror_file(&info.name) {
        return Err(fail(format!(
            "release name {:?} would take the place of the mirror's own files; not mirrored",
            info.name
        )));
    }
    let Some((platform_key, platform)) = pick_platform(&info) else {
        return Err(fail(format!(
            "release {} offers no binary for this platform ({}); a mirror holds the binary of the platform it runs on",
            info.name,
            crate::names::platform_key()
        )));
    };
    let platform = platform.clone();

    let state_path = dir.join(STATE_FILE);
    let mut state = MirrorState::load(&state_path)?;
    let bin_dir = dir.join(&info.name);
    let bin_path = bin_dir.join(daemon);
    let sig_path = bin_dir.join(format!("{daemon}.minisig"));
    let held = state
        .releases
        .iter()
        .find(|r| {
            r.name == info.name
                && r.version == info.version
                && r.upstream_url == platform.url
                && r.upstream_checksum.eq_ignore_ascii_case(&platform.checksum)
                && r.upstream_checksum_algorithm == platform.checksum_algorithm
        })
        .cloned();
    let held = match held {
        Some(r) if sha256_file(&bin_path).ok().as_deref() == Some(r.sha256.as_str()) => Some(r),
        Some(_) => {
            tracing::warn!(
                "{} is missing or no longer the binary this mirror published; fetching and verifying it again",
                bin_path.display()
            );
            None
        }
        None => None,
    };

    let first_key = signers.first().map(|s| s.key_id());
    let downloaded = held.is_none();
    let (sha256, signed_by) = match held {
        Some(r) => {
            // a new first key (a rotation), or a signature gone from the mirror, signs it again
            if r.signed_by != first_key || (first_key.is_some() && !sig_path.is_file()) {
                sign_binary(signers, &bin_path, &sig_path, daemon, &info, now)?;
            }
            (r.sha256, first_key.clone())
        }
        None => {
            let (result, _timings) = helper.prepare(&info).await;
            result.map_err(|r| {
                fail(format!(
                    "release {} ({}) was refused: {}; the mirror is unchanged",
                    info.name, info.version, r.reason
                ))
            })?;
            let staged = inst.data.upgrade_bin(&info.name);
            let sha256 = sha256_file(&staged)
                .map_err(|e| Error::io("failed to read the verified binary", &staged, e))?;
            fsutil::create_dir_all(&bin_dir)?;
            std::fs::set_permissions(
                &staged,
                std::os::unix::fs::PermissionsExt::from_mode(PUBLISHED_MODE),
            )
            .map_err(|e| Error::io("failed to set the mode of", &staged, e))?;
            // the binary first, then its signature: a signature already there is one of the
            // same verified release (a binary fetched again), never of other bytes
            std::fs::rename(&staged, &bin_path)
                .map_err(|e| Error::io("failed to move the verified binary to", &bin_path, e))?;
            fsutil::sync_dir(&bin_dir)?;
            sign_binary(signers, &bin_path, &sig_path, daemon, &info, now)?;
            (sha256, first_key.clone())
        }
    };

    // the feed: every signature made before anything is written
    let sequence = next_sequence(state.sequence, now);
    let expires =
        now.saturating_add(time::Duration::try_from(opts.expires).unwrap_or(time::Duration::MAX));
    let feed = MirrorFeed {
        info: &info,
        platform: &platform_key,
        url: binary_url(opts.base_url.as_deref(), daemon, &info.name),
        sha256: sha256.clone(),
        expires,
        sequence,
        signed_at: now,
    };
    let bytes = feed
        .to_bytes()
        .map_err(|e| fail(format!("cannot write the feed document: {e}")))?;
    let comment = format!(
        "timestamp:{}\tfile:upgrade-info.json\tsequence:{sequence}",
        now.unix_timestamp()
    );
    let signatures = signers
        .iter()
        .map(|s| {
            s.sign(&mut bytes.as_slice(), &comment)
                .map_err(|e| fail(format!("cannot sign the feed with key {}: {e}", s.key_id())))
        })
        .collect::<Result<Vec<_>>>()?;
    // the sequence is recorded before the feed is published: whatever fails after, the next
    // signing goes higher (an equal sequence with other bytes is refused by the nodes)
    state.sequence = Some(sequence);
    state.save(&state_path)?;
    let feed_path = dir.join("upgrade-info.json");
    fsutil::atomic_write(&feed_path, &bytes, PUBLISHED_MODE)?;
    for (i, sig) in signatures.iter().enumerate() {
        fsutil::atomic_write(
            &feed_signature(&feed_path, i),
            sig.as_bytes(),
            PUBLISHED_MODE,
        )?;
    }
    // signatures of keys no longer used would be checked by nodes that trust them
    for i in signatures.len()..crate::source::MAX_FEED_SIGNATURES {
        remove_if_present(&feed_signature(&feed_path, i))?;
    }

    state.releases.retain(|r| r.name != info.name);
    state.releases.push(MirroredRelease {
        name: info.name.clone(),
        version: info.version.clone(),
        upstream_url: platform.url.clone(),
        upstream_checksum: platform.checksum.clone(),
        upstream_checksum_algorithm: platform.checksum_algorithm.clone(),
        sha256,
        signed_by,
        synced_at: now,
    });
    let names: Vec<String> = state.releases.iter().map(|r| r.name.clone()).collect();
    let pruned = to_prune(&names, opts.keep);
    for name in &pruned {
        // names were checked when they were mirrored; checked again, since they become paths
        if check_name(name).is_ok() {
            let old = dir.join(name);
            std::fs::remove_dir_all(&old)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| Error::io("failed to remove the old release", &old, e))?;
        }
    }
    state.releases.retain(|r| !pruned.contains(&r.name));
    state.save(&state_path)?;
    Ok(Synced {
        daemon: daemon.to_owned(),
        name: info.name.clone(),
        version: info.version.clone(),
        downloaded,
        sequence,
        expires,
        signed_by: signers.iter().map(|s| s.key_id()).collect(),
        pruned,
        feed: feed_path,
    })
}

/// Signs the binary at `bin` into `sig` with the first key (`file:` names the file nodes
/// download, `version:` the release, so the signature cannot be replayed for another); without
/// keys, an old signature is removed.
fn sign_binary(
    signers: &[Arc<dyn Signer>],
    bin: &Path,
    sig: &Path,
    daemon: &str,
    info: &UpgradeInfo,
    now: OffsetDateTime,
) -> Result<()> {
    let Some(signer) = signers.first() else {
        return remove_if_present(sig);
    };
    let mut file = std::fs::File::open(bin).map_err(|e| Error::io("failed to open", bin, e))?;
    let comment = format!(
        "timestamp:{}\tfile:{daemon}\tversion:{}",
        now.unix_timestamp(),
        info.version
    );
    let text = signer.sign(&mut file, &comment).map_err(|e| {
        Error::Setup(format!(
            "{daemon}: cannot sign {} with key {}: {e}",
            bin.display(),
            signer.key_id()
        ))
    })?;
    fsutil::atomic_write(sig, text.as_bytes(), PUBLISHED_MODE)
}

/// `<feed>.minisig`, then `<feed>.minisig.1`, … (what nodes look for).
fn feed_signature(feed: &Path, i: usize) -> PathBuf {
    let mut name = feed.as_os_str().to_owned();
    name.push(crate::source::feed_signature_suffix(i));
    PathBuf::from(name)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("failed to remove", path, e))
        }
        _ => Ok(()),
    }
}

/// SHA-256 of a file, hex.
fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = fsutil::open_regular(path).map_err(std::io::Error::other)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
