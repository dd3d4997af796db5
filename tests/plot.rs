//! tapstack-plot draws a trace and a pcap: the SVGs hold every series, with a mark for each
//! retransmission and each loss the input records, and their legends count them.

use std::path::Path;
use std::process::Command;

const TRACE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/trace-2pct-loss.jsonl"
);
const PCAP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pcaps/tcp-retransmission.pcap");
/// The colours of draw.rs: retransmission marks, and the crosses of ranges deemed lost.
const RETRANSMISSION: &str = "#E41A1C";
const LOST: &str = "#A65628";

/// Runs tapstack-plot with `args` into `dir`, SVG out: the pictures' paths.
fn plot(dir: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_tapstack-plot"))
        .args(args)
        .args(["--format", "svg", "--out"])
        .arg(dir.join("p"))
        .output()
        .expect("tapstack-plot runs");
    assert!(
        out.status.success(),
        "tapstack-plot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The texts of an SVG's `<text>` elements.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = t.split_once('>')?.1;
            Some(body.split("</text>").next()?.trim().replace("&gt;", ">"))
        })
        .collect()
}

fn count(svg: &str, element: &str, attr: &str) -> usize {
    svg.split('<')
        .filter(|e| e.starts_with(element) && e.contains(attr))
        .count()
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tapstack-plot-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_trace_is_drawn_with_every_series_and_a_mark_per_retransmission_and_loss() {
    let records: Vec<serde_json::Value> = std::fs::read_to_string(TRACE)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let named = |name: &'static str| records.iter().filter(move |r| r["name"] == name);
    let retransmissions = named("transport:packet_sent")
        .filter(|r| r["data"]["trigger"] == "retransmission")
        .count();
    let lost = named("recovery:packet_lost").count();
    let recoveries = named("recovery:congestion_state_updated")
        .filter(|r| r["data"]["new"] == "recovery")
        .count();
    assert!(retransmissions > 0 && lost > 0 && recoveries > 0);

    let dir = tempdir("trace");
    let paths = plot(&dir, &["--trace", TRACE]);
    assert_eq!(paths.len(), 1);
    let svg = std::fs::read_to_string(&paths[0]).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let texts = texts(&svg);
    for label in [
        "cumulative ACK",
        "receive window edge",
        &format!("retransmission ({retransmissions})"),
        &format!("deemed lost ({lost})"),
        &format!("fast recovery ({recoveries})"),
        "cwnd",
        "ssthresh",
        "bytes in flight",
        "SRTT",
        "RTO",
        "congestion window",
        "RTT estimates",
    ] {
        assert!(
            texts.iter().any(|t| t == label),
            "no {label:?} in {texts:?}"
        );
    }
    assert!(texts.iter().any(|t| t.starts_with("data sent (")));
    assert!(texts.iter().any(|t| t.starts_with("SACKed (")));
    // One mark per retransmission and one per loss, and one of each in the legend; a cross
    // is two lines.
    let fill = format!("fill=\"{RETRANSMISSION}\"");
    assert_eq!(count(&svg, "circle", &fill), retransmissions + 1);
    let stroke = format!("stroke=\"{LOST}\"");
    assert_eq!(count(&svg, "line", &stroke), 2 * (lost + 1));
    // Recovery episodes are shaded: a filled rectangle each, and one in the legend.
    assert_eq!(count(&svg, "rect", "fill=\"#E41A1C\""), recoveries + 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_pcap_is_drawn_as_a_time_sequence_graph_with_its_retransmissions_marked() {
    // 128 KiB through echo with 5% loss and 5% reordering (pcaps/README.md).
    let frames = tapstack::phy::read_pcap(Path::new(PCAP)).unwrap();
    assert!(!frames.is_empty());
    let dir = tempdir("pcap");
    let paths = plot(&dir, &["--pcap", PCAP]);
    assert_eq!(paths.len(), 1);
    assert!(paths[0].ends_with("p-pcap.svg"));
    let svg = std::fs::read_to_string(&paths[0]).unwrap();
    let texts = texts(&svg);
    let legend = texts
        .iter()
        .find_map(|t| t.strip_prefix("retransmission ("))
        .expect("retransmissions in the legend");
    let n: usize = legend.trim_end_matches(')').parse().unwrap();
    assert!(n > 0);
    let fill = format!("fill=\"{RETRANSMISSION}\"");
    assert_eq!(count(&svg, "circle", &fill), n + 1);
    for label in ["cumulative ACK", "receive window edge", "time (s)"] {
        assert!(
            texts.iter().any(|t| t == label),
            "no {label:?} in {texts:?}"
        );
    }
    // A pcap knows nothing of cwnd.
    assert!(!texts.iter().any(|t| t == "cwnd"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_trace_and_a_pcap_share_one_time_axis() {
    let dir = tempdir("both");
    let paths = plot(&dir, &["--trace", TRACE, "--pcap", PCAP]);
    assert_eq!(paths.len(), 2);
    // The time ticks (centred under the axis; the others are right-aligned) of each picture.
    let ticks = |p: &str| -> std::collections::BTreeSet<String> {
        let svg = std::fs::read_to_string(p).unwrap();
        svg.split("<text")
            .skip(1)
            .filter(|t| {
                t.split('>')
                    .next()
                    .unwrap()
                    .contains("text-anchor=\"middle\"")
            })
            .filter_map(|t| {
                t.split_once('>')
                    .map(|(_, b)| b.split("</text>").next().unwrap())
            })
            .map(|b| b.trim().to_string())
            .filter(|b| b.parse::<f64>().is_ok())
            .collect()
    };
    let (trace, pcap) = (ticks(&paths[0]), ticks(&paths[1]));
    assert!(trace.len() > 3, "{trace:?}");
    assert_eq!(trace, pcap);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = tempdir("bad");
    let bad = dir.join("bad.trace");
    std::fs::write(&bad, "{\"time\":1,\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tapstack-plot"))
        .arg("--trace")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.trace") && err.contains("line 1"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_tapstack-plot"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to draw"));
    std::fs::remove_dir_all(dir).unwrap();
}
