//! nymvisor-plugins: implemented by a later issue (see the README's status section).
