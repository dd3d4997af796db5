//! tapstack-plot: draws a connection from a tapstack trace (`--trace` of any app) and from a
//! pcap, on one time axis.
//!
//! From a trace: the time-sequence graph (data sent, ACKs, the receive window's edge, SACKed
//! ranges, retransmissions, probes, what the stack deemed lost, timeouts), the congestion
//! window with ssthresh and bytes in flight (recovery episodes shaded), and SRTT with the RTO.
//! From a pcap (the kernel's side, say): the time-sequence graph alone. Each starts at its
//! connection's first segment, so that two pictures of one transfer line up.
//!
//! ```text
//! tapstack-plot --trace stack.trace --pcap tap.pcap --out demo   # demo-trace.png, demo-pcap.png
//! ```

mod draw;
mod flow;
mod pcap;
mod trace;

use clap::{Parser, ValueEnum};
use plotters::prelude::*;
use std::error::Error;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Png,
    Svg,
}

/// Draws a TCP connection from a tapstack trace and from a pcap
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A trace written by --trace (one JSON object per line)
    #[arg(long)]
    trace: Option<PathBuf>,
    /// An Ethernet pcap (tcpdump -w on the tap, or the stack's own --pcap)
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Draw the connection with this port at either end [default: the one that sent the most]
    #[arg(long)]
    port: Option<u16>,
    /// From the pcap, draw data sent by this address (the kernel's, say) [default: whichever
    /// end sent the most]
    #[arg(long, value_name = "ADDR")]
    from: Option<std::net::IpAddr>,
    /// Where to write: PREFIX-trace.EXT and PREFIX-pcap.EXT [default: the input's path
    /// without its extension]
    #[arg(long, value_name = "PREFIX")]
    out: Option<PathBuf>,
    /// Picture format
    #[arg(long, value_enum, default_value = "png")]
    format: Format,
    /// Width and height of a picture, in pixels
    #[arg(long, num_args = 2, value_names = ["W", "H"], default_values_t = [1200, 1000])]
    size: Vec<u32>,
}

/// The smallest and largest side of a picture, in pixels.
const MIN_SIDE: u32 = 200;
const MAX_SIDE: u32 = 16384;

/// Where the labels' font may be: Debian's fonts-dejavu-core, other distributions', or
/// `TAPSTACK_PLOT_FONT`.
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers the font plotters draws every label with.
fn load_font() -> Result<(), Box<dyn Error>> {
    let env = std::env::var("TAPSTACK_PLOT_FONT").ok();
    let path = env
        .iter()
        .map(String::as_str)
        .chain(FONTS)
        .find(|p| Path::new(p).exists())
        .ok_or(
            "no TrueType font for the labels: install fonts-dejavu-core, or name one in \
             TAPSTACK_PLOT_FONT",
        )?;
    let bytes: &'static [u8] = Box::leak(std::fs::read(path)?.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| format!("{path}: not a font plotters can read"))?;
    Ok(())
}

/// Which picture a flow gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Figure {
    /// The time-sequence graph over cwnd over RTT.
    Trace,
    /// The time-sequence graph alone.
    Pcap,
}

fn picture(
    figure: Figure,
    f: &flow::Flow,
    span: f64,
    path: &Path,
    format: Format,
    size: (u32, u32),
) -> Result<(), Box<dyn Error>> {
    // The pcap's graph is as tall as the trace's time-sequence panel.
    let size = match figure {
        Figure::Trace => size,
        Figure::Pcap => (size.0, draw::sequence_height(size.1)),
    };
    match (format, figure) {
        (Format::Svg, Figure::Trace) => {
            draw::trace_figure(SVGBackend::new(path, size).into_drawing_area(), f, span)
        }
        (Format::Svg, Figure::Pcap) => {
            draw::pcap_figure(SVGBackend::new(path, size).into_drawing_area(), f, span)
        }
        (Format::Png, Figure::Trace) => {
            draw::trace_figure(BitMapBackend::new(path, size).into_drawing_area(), f, span)
        }
        (Format::Png, Figure::Pcap) => {
            draw::pcap_figure(BitMapBackend::new(path, size).into_drawing_area(), f, span)
        }
    }
    .map_err(|e| format!("{}: {e}", path.display()).into())
}

fn run(args: Args) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    let mut flows: Vec<(flow::Flow, &str, Figure)> = Vec::new();
    if let Some(path) = &args.trace {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let records = trace::read(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let conn = trace::pick(&records, args.port)
            .ok_or_else(|| format!("{}: no connection to draw", path.display()))?;
        flows.push((trace::flow(&records, &conn), "trace", Figure::Trace));
    }
    if let Some(path) = &args.pcap {
        let frames = tapstack::phy::read_pcap(path)?;
        let f = pcap::flow(&frames, args.port, args.from)
            .ok_or_else(|| format!("{}: no TCP data to draw", path.display()))?;
        flows.push((f, "pcap", Figure::Pcap));
    }
    if flows.is_empty() {
        return Err("nothing to draw: give --trace, --pcap or both".into());
    }
    load_font()?;
    let span = flows
        .iter()
        .map(|(f, _, _)| f.duration())
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.02;
    let prefix = args
        .out
        .clone()
        .or_else(|| {
            args.trace
                .clone()
                .or(args.pcap.clone())
                .map(|p| p.with_extension(""))
        })
        .unwrap_or_else(|| PathBuf::from("tapstack"));
    let ext = match args.format {
        Format::Png => "png",
        Format::Svg => "svg",
    };
    let size = (
        args.size[0].clamp(MIN_SIDE, MAX_SIDE),
        args.size[1].clamp(MIN_SIDE, MAX_SIDE),
    );
    let mut written = Vec::new();
    for (f, what, figure) in &flows {
        let mut name = prefix.clone().into_os_string();
        name.push(format!("-{what}.{ext}"));
        let path = PathBuf::from(name);
        picture(*figure, f, span, &path, args.format, size)?;
        written.push(path);
    }
    Ok(written)
}

fn main() {
    match run(Args::parse()) {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
        }
        Err(e) => {
            eprintln!("tapstack-plot: {e}");
            std::process::exit(1);
        }
    }
}
