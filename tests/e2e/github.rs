//! The GitHub source against a mock shaped like the real `nymtech/nym` repository: many tag
//! families and pages, `hashes.json` as Nym's release action writes it (partial, broken or
//! missing entries), downloads redirected to object storage, ETags, rate limits, private
//! repositories.

use std::time::Duration;

use nymvisor_tests::github::*;
use nymvisor_tests::*;

const TAG: &str = "nym-binaries-v2026.9-venaco";
const NAME: &str = "v2026.9-venaco";

/// The fake `nym-node` 1.2.0 as release bytes, and the build information it prints.
fn release_bytes(home: &TestHome) -> (Vec<u8>, serde_json::Value) {
    let bin = home.daemon_bin("release-1.2.0", "nym-node", "1.2.0", &[]);
    (std::fs::read(&bin).unwrap(), build_details(&bin))
}

fn spawn_github(home: &TestHome, mock: &GithubMock, extra: &[(&str, &str)]) -> RunHandle {
    let api = mock.api_url();
    let mut env: Vec<(&str, &str)> = FAST.to_vec();
    env.extend([
        ("NYMVISOR_UPSTREAM_SOURCE", "github"),
        ("NYMVISOR_GITHUB_API_URL", api.as_str()),
        ("NYMVISOR_UPSTREAM_POLLING_RATE", "1s"),
        ("NYMVISOR_HTTP_DOCUMENT_TIMEOUT", "5s"),
    ]);
    env.extend_from_slice(extra);
    home.spawn_run(&env, &[])
}

fn current(home: &TestHome) -> String {
    std::fs::read_link(home.data_dir("nym-node").join("current"))
        .unwrap()
        .display()
        .to_string()
}

/// Our release: `nym-node`, other binaries, and `hashes.json` (if given).
fn ours(node: &[u8], hashes: Option<Vec<u8>>, digest: bool) -> MockRelease {
    let mut node = MockAsset::new("nym-node", node.to_vec());
    if !digest {
        node = node.without_digest();
    }
    let mut assets = vec![
        MockAsset::new("nym-api", b"nym-api binary".to_vec()),
        node,
        MockAsset::new("nym-socks5-client", b"socks5 binary".to_vec()),
    ];
    if let Some(h) = hashes {
        assets.push(MockAsset::new("hashes.json", h));
    }
    MockRelease::new(TAG, "2026-09-16T15:00:00Z", assets)
}

#[test]
fn finds_our_release_far_down_the_listing_behind_other_families() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let (bytes, details) = release_bytes(&home);
    let hashes = hashes_json(TAG, &[("nym-node", &bytes, Some(details))]);
    // 250 newer releases of other families, a newer draft and prerelease of ours: page 3
    let mut releases = other_families(250, 2026);
    let mut draft = MockRelease::new(
        "nym-binaries-v2026.10-draft",
        "2026-12-01T00:00:00Z",
        vec![MockAsset::new("nym-node", b"draft".to_vec())],
    );
    draft.draft = true;
    let mut pre = MockRelease::new(
        "nym-binaries-v2026.10-rc1",
        "2026-11-30T00:00:00Z",
        vec![MockAsset::new("nym-node", b"rc".to_vec())],
    );
    pre.prerelease = true;
    releases.insert(3, draft);
    releases.insert(7, pre);
    releases.push(ours(&bytes, Some(hashes), true));
    let mock = GithubMock::start(releases);
    let mut nv = spawn_github(&home, &mock, &[]);
    nv.wait_start(1);
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    assert_eq!(current(&home), format!("upgrades/{NAME}"));
    let pages: Vec<_> = mock
        .listing_requests()
        .iter()
        .filter_map(|r| r.query("page").map(str::to_owned))
        .collect();
    assert!(pages.contains(&"3".to_owned()), "{pages:?}");
    // the version came from hashes.json: one download, by the prepare stage
    assert_eq!(mock.downloads_of("nym-node"), 1);
    assert_eq!(mock.downloads_of("draft") + mock.downloads_of("rc"), 0);
    nv.stop();
}

#[test]
fn partial_details_and_a_broken_entry_of_another_binary() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let (bytes, details) = release_bytes(&home);
    // an older binary printed fewer fields
    let partial = serde_json::json!({
        "binary_name": details["binary_name"],
        "build_timestamp": details["build_timestamp"],
        "build_version": details["build_version"],
        "commit_sha": details["commit_sha"],
    });
    let mut hashes: serde_json::Value =
        serde_json::from_slice(&hashes_json(TAG, &[("nym-node", &bytes, Some(partial))])).unwrap();
    hashes["assets"]["nym-api"] = serde_json::json!({"sha256": 12, "details": "no JSON here"});
    hashes["assets"]["nym-cli"] = serde_json::json!(null);
    let mock = GithubMock::start(vec![ours(
        &bytes,
        Some(serde_json::to_vec(&hashes).unwrap()),
        false,
    )]);
    let mut nv = spawn_github(&home, &mock, &[]);
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    // the records are written right after the new daemon started
    nv.wait_stderr("upgrade applied");
    assert_eq!(mock.downloads_of("nym-node"), 1, "no probe was needed");
    let plan = read_json(&home.data_dir("nym-node").join("upgrade-plan.json"));
    assert_eq!(
        plan["current"]["binaryDetails"]["commit_sha"],
        details["commit_sha"]
    );
    assert!(
        plan["current"]["binaryDetails"]
            .get("rustc_version")
            .is_none()
    );
    nv.stop();
}

#[test]
fn without_details_the_version_is_probed_from_one_verified_download() {
    // (hashes.json entry without details, asset digest) for every combination that has a checksum
    for (hashes, digest) in [(true, false), (true, true), (false, true)] {
        let home = TestHome::new();
        home.init_default("1.1.0");
        let (bytes, _) = release_bytes(&home);
        let doc = hashes.then(|| hashes_json(TAG, &[("nym-node", &bytes, None)]));
        let mock = GithubMock::start(vec![ours(&bytes, doc, digest)]);
        let mut nv = spawn_github(&home, &mock, &[]);
        let new = nv.wait_start(2);
        assert_eq!(
            new.version,
            "1.2.0",
            "hashes {hashes} digest {digest}: {}",
            nv.stderr()
        );
        assert!(
            nv.stderr().contains("to ask it for its version"),
            "{}",
            nv.stderr()
        );
        // a few more polls: the release is not probed again
        let polls = mock.listing_requests().len();
        assert!(wait_for(PATIENCE, || mock.listing_requests().len() >= polls + 2));
        assert_eq!(
            mock.downloads_of("nym-node"),
            1,
            "hashes {hashes} digest {digest}: the probe's download is the one installed\n{}",
            nv.stderr()
        );
        nv.stop();
    }
}

#[test]
fn a_release_without_any_checksum_is_refused_with_what_to_do() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let (bytes, _) = release_bytes(&home);
    let mock = GithubMock::start(vec![ours(&bytes, None, false)]);
    let mut nv = spawn_github(&home, &mock, &[]);
    let start = nv.wait_start(1);
    nv.wait_stderr("no checksum to verify the download against");
    let log = nv.stderr();
    for needle in [TAG, "asset nym-node", "no hashes.json", "add-upgrade"] {
        assert!(log.contains(needle), "{needle:?} missing:\n{log}");
    }
    assert_eq!(
        mock.downloads_of("nym-node"),
        0,
        "nothing unverified was fetched"
    );
    assert!(alive(start.pid) && nv.starts().len() == 1);
    let status = read_json_out(&home.run(&["status", "-o", "json"]));
    assert!(
        status["lastError"]["message"]
            .as_str()
            .unwrap()
            .contains("no checksum"),
        "{status}"
    );
    nv.stop();
}

fn read_json_out(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn hashes_json_and_the_api_digest_must_agree() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let (bytes, details) = release_bytes(&home);
    let hashes = hashes_json(TAG, &[("nym-node", b"other bytes", Some(details))]);
    let mock = GithubMock::start(vec![ours(&bytes, Some(hashes), true)]);
    let mut nv = spawn_github(&home, &mock, &[]);
    nv.wait_start(1);
    nv.wait_stderr("but the API's digest is");
    assert_eq!(mock.downloads_of("nym-node"), 0);
    nv.stop();
}

#[test]
fn a_rate_limit_stops_api_requests_until_its_reset() {
    for retry_after in [false, true] {
        let home = TestHome::new();
        home.init_default("1.1.0");
        let (bytes, details) = release_bytes(&home);
        let hashes = hashes_json(TAG, &[("nym-node", &bytes, Some(details))]);
        let mock = GithubMock::start(vec![ours(&bytes, Some(hashes), true)]);
        // the first listing request is limited for 3 s from when it arrives
        mock.set_rate_limit(Some(RateLimit::Next {
            secs: 3,
            retry_after,
        }));
        let mut nv = spawn_github(&home, &mock, &[]);
        nv.wait_stderr("rate limit is exhausted");
        let log = nv.stderr();
        assert!(log.contains("no request to the API before"), "{log}");
        assert!(log.contains("GITHUB_TOKEN"), "a token is suggested:\n{log}");
        // typed, through the helper: the poller itself waits for the reset
        assert!(
            log.contains("the source is not asked again before"),
            "{log}"
        );
        let status = read_json_out(&home.run(&["status", "-o", "json"]));
        assert!(
            status["lastError"]["message"]
                .as_str()
                .unwrap()
                .contains("rate limit"),
            "{status}"
        );
        // the next poll (and with it the next request) waits for the reset
        assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
        let reset = mock.rate_limited_until().unwrap();
        let listing = mock.listing_requests();
        assert!(listing.len() >= 2);
        let first_limited = listing[0].at;
        assert!(first_limited < reset);
        assert!(
            listing[1].at >= reset - Duration::from_millis(1),
            "asked again {:?} before the reset",
            reset.duration_since(listing[1].at).unwrap_or_default()
        );
        nv.stop();
    }
}

#[test]
fn polls_that_find_nothing_new_are_conditional() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let (bytes, details) = release_bytes(&home);
    let hashes = hashes_json(TAG, &[("nym-node", &bytes, Some(details))]);
    let mut releases = other_families(120, 2026);
    releases.push(ours(&bytes, Some(hashes), true));
    let mock = GithubMock::start(releases);
    let mut nv = spawn_github(&home, &mock, &[]);
    nv.wait_start(2);
    assert!(wait_for(PATIENCE, || {
        mock.listing_requests()
            .iter()
            .filter(|r| r.header("if-none-match").is_some())
            .count()
            >= 4
    }));
    let listing = mock.listing_requests();
    // two pages read whole once; every later request is conditional (304, not counted by GitHub)
    let whole: Vec<_> = listing
        .iter()
        .filter(|r| r.header("if-none-match").is_none())
        .collect();
    assert_eq!(
        whole.len(),
        2,
        "{:?}",
        listing.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    let hashes_fetched = mock
        .storage
        .hits()
        .iter()
        .filter(|h| h.ends_with("/hashes.json"))
        .count();
    assert_eq!(hashes_fetched, 1);
    nv.stop();
}

#[test]
fn a_private_repository_is_read_with_a_token_that_stays_with_the_api() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let (bytes, details) = release_bytes(&home);
    let hashes = hashes_json(TAG, &[("nym-node", &bytes, Some(details))]);
    let mock = GithubMock::start(vec![ours(&bytes, Some(hashes), true)]).private("s3cret-token");

    // without the token the repository does not exist
    let mut nv = spawn_github(&home, &mock, &[]);
    nv.wait_stderr("HTTP 404");
    assert!(nv.stderr().contains("GITHUB_TOKEN"), "{}", nv.stderr());
    nv.stop();

    let mut nv = spawn_github(&home, &mock, &[("GITHUB_TOKEN", "s3cret-token")]);
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    let api = mock.api.requests();
    assert!(
        api.iter().any(|r| r.path.contains("/releases/assets/")),
        "assets are fetched through the API"
    );
    for r in api.iter().filter(|r| r.path.contains("/releases")) {
        if r.path.contains("/assets/") || r.path.contains("releases?") {
            assert!(
                r.header("authorization").is_none()
                    || r.header("authorization") == Some("Bearer s3cret-token")
            );
        }
    }
    assert!(
        api.iter()
            .filter(|r| r.header("authorization").is_some())
            .count()
            >= 2
    );
    for r in mock.storage.requests() {
        assert_eq!(
            r.header("authorization"),
            None,
            "the token went to the storage host: {}",
            r.path
        );
    }
    nv.stop();
}
