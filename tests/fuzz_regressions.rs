//! Every input in `fuzz/regressions/` (crashers the fuzzers found, and seeds) replayed through
//! the fuzz harness: each must run to the end without a panic or a hang.

#[path = "../fuzz/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).expect("read input"),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn frame_regressions() {
    let all = inputs("frames");
    assert!(!all.is_empty(), "fuzz/regressions/frames is empty");
    for (name, data) in all {
        eprintln!("frames/{name}");
        harness::frames(&data);
    }
}

#[test]
fn segment_regressions() {
    let all = inputs("segments");
    assert!(!all.is_empty(), "fuzz/regressions/segments is empty");
    for (name, data) in all {
        eprintln!("segments/{name}");
        harness::segments(&data);
    }
}

/// The IPv6 target's inputs, and the IPv4 target's replayed over IPv6: the same segments
/// reach the same state machine through the other family's layer.
#[test]
fn segment6_regressions() {
    let own = inputs("segments6");
    assert!(!own.is_empty(), "fuzz/regressions/segments6 is empty");
    for (dir, all) in [("segments6", own), ("segments", inputs("segments"))] {
        for (name, data) in all {
            eprintln!("{dir}/{name} over IPv6");
            harness::segments6(&data);
        }
    }
}
