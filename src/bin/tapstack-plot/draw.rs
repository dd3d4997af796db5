//! The pictures, with plotters: the time-sequence graph (tcptrace's colours), then from a
//! trace the congestion window and the RTT estimates, all on one time axis.

use crate::flow::{Flow, Kind, Metrics, Series};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use std::error::Error;

/// New data.
pub const DATA: RGBColor = RGBColor(0x22, 0x22, 0x22);
/// Retransmissions (tcptrace's red).
pub const RETRANSMISSION: RGBColor = RGBColor(0xE4, 0x1A, 0x1C);
/// Probes (zero-window, keep-alive, tail loss).
pub const PROBE: RGBColor = RGBColor(0x98, 0x4E, 0xA3);
/// The cumulative ACK (tcptrace's green).
pub const ACK: RGBColor = RGBColor(0x4D, 0xAF, 0x4A);
/// The receive window's right edge (tcptrace's yellow, darker to be seen on white).
pub const WINDOW: RGBColor = RGBColor(0xD9, 0x9A, 0x00);
/// SACKed ranges.
pub const SACK: RGBColor = RGBColor(0x37, 0x7E, 0xB8);
/// Ranges the stack deemed lost.
pub const LOST: RGBColor = RGBColor(0xA6, 0x56, 0x28);
/// Retransmission timeouts.
pub const RTO: RGBColor = RGBColor(0xE7, 0x29, 0x8A);
/// The congestion window.
pub const CWND: RGBColor = RGBColor(0x1F, 0x5F, 0xBF);
/// ssthresh.
pub const SSTHRESH: RGBColor = RGBColor(0xFF, 0x7F, 0x00);
/// Bytes in flight.
pub const FLIGHT: RGBColor = RGBColor(0x88, 0x88, 0x88);

type Res = Result<(), Box<dyn Error>>;

/// The time-sequence graph's share of a trace figure of height `h` (the rest: cwnd, a
/// quarter, and RTT); a pcap's figure is that tall, so the two line up.
pub fn sequence_height(h: u32) -> u32 {
    h / 20 * 11
}

/// Steps through `points` (each value holds until the next), on to `end`.
fn steps(points: &Series, end: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2 + 1);
    for (i, &(t, y)) in points.iter().enumerate() {
        if i > 0 {
            out.push((t, points[i - 1].1));
        }
        out.push((t, y));
    }
    if let Some(&(t, y)) = points.last() {
        if end > t {
            out.push((end, y));
        }
    }
    out
}

/// Where the marks of the segments of `kind` go: their start, in KiB.
fn marks(f: &Flow, kind: Kind) -> impl Iterator<Item = (f64, f64)> + '_ {
    f.sent
        .iter()
        .filter(move |s| s.kind == kind)
        .map(|s| (s.t, s.start / 1024.0))
}

/// A panel of a figure: its caption, margin and label areas (the same for every panel).
fn panel<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    size: u32,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(area);
    b.caption(caption, ("sans-serif", size))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(60);
    b
}

/// Draws a panel's legend at `position`, on a light box.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Res
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn legend_line(c: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
}

/// The time-sequence graph of `f` over `[0, span]` seconds, sequence numbers in KiB.
pub fn time_sequence<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    f: &Flow,
    title: &str,
    span: f64,
) -> Res
where
    DB::ErrorType: 'static,
{
    let kib = |b: f64| b / 1024.0;
    // The receive window's edge may be far above the data: show some of it, not all.
    let data_top = f.sent.iter().map(|s| s.end).fold(1.0, f64::max);
    let top = kib(f.top().min(data_top * 1.3)) * 1.02;
    let mut chart = panel(area, title, 18).build_cartesian_2d(0.0..span, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("relative sequence (KiB)")
        .light_line_style(WHITE)
        .draw()?;
    let segs = |kind: Kind, c: RGBColor| {
        f.sent.iter().filter(move |s| s.kind == kind).map(move |s| {
            PathElement::new(
                vec![(s.t, kib(s.start)), (s.t, kib(s.end))],
                c.stroke_width(if kind == Kind::New { 1 } else { 2 }),
            )
        })
    };
    let n_new = f.sent.iter().filter(|s| s.kind == Kind::New).count();
    chart
        .draw_series(segs(Kind::New, DATA))?
        .label(format!("data sent ({n_new})"))
        .legend(legend_line(DATA));
    chart
        .draw_series(LineSeries::new(
            steps(&f.acks, span).into_iter().map(|(t, a)| (t, kib(a))),
            ACK.stroke_width(1),
        ))?
        .label("cumulative ACK")
        .legend(legend_line(ACK));
    chart
        .draw_series(LineSeries::new(
            steps(&f.window_edge, span)
                .into_iter()
                .map(|(t, a)| (t, kib(a))),
            WINDOW.stroke_width(1),
        ))?
        .label("receive window edge")
        .legend(legend_line(WINDOW));
    if !f.sacks.is_empty() {
        chart
            .draw_series(f.sacks.iter().map(|&(t, l, r)| {
                PathElement::new(vec![(t, kib(l)), (t, kib(r))], SACK.stroke_width(3))
            }))?
            .label(format!("SACKed ({} blocks)", f.sacks.len()))
            .legend(legend_line(SACK));
    }
    let n_rtx = f
        .sent
        .iter()
        .filter(|s| s.kind == Kind::Retransmission)
        .count();
    if n_rtx > 0 {
        chart
            .draw_series(segs(Kind::Retransmission, RETRANSMISSION))?
            .label(format!("retransmission ({n_rtx})"))
            .legend(|(x, y)| Circle::new((x + 8, y), 3, RETRANSMISSION.filled()));
        // A mark at each, visible however short the segment is at this scale.
        chart.draw_series(
            marks(f, Kind::Retransmission).map(|p| Circle::new(p, 3, RETRANSMISSION.filled())),
        )?;
    }
    let n_probe = f.sent.iter().filter(|s| s.kind == Kind::Probe).count();
    if n_probe > 0 {
        chart
            .draw_series(segs(Kind::Probe, PROBE))?
            .label(format!("probe ({n_probe})"))
            .legend(|(x, y)| TriangleMarker::new((x + 8, y), 5, PROBE.filled()));
        chart.draw_series(
            marks(f, Kind::Probe).map(|p| TriangleMarker::new(p, 5, PROBE.filled())),
        )?;
    }
    if !f.lost.is_empty() {
        chart
            .draw_series(
                f.lost
                    .iter()
                    .map(|&(t, s, _)| Cross::new((t, kib(s)), 4, LOST.stroke_width(2))),
            )?
            .label(format!("deemed lost ({})", f.lost.len()))
            .legend(|(x, y)| Cross::new((x + 8, y), 4, LOST.stroke_width(2)));
    }
    if !f.rtos.is_empty() {
        chart
            .draw_series(f.rtos.iter().map(|&t| {
                PathElement::new(vec![(t, 0.0), (t, top)], RTO.mix(0.6).stroke_width(1))
            }))?
            .label(format!("retransmission timeout ({})", f.rtos.len()))
            .legend(legend_line(RTO));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

/// cwnd, ssthresh and bytes in flight in KiB, recovery episodes shaded (fast recovery red,
/// after a timeout purple).
pub fn congestion<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, m: &Metrics, span: f64) -> Res
where
    DB::ErrorType: 'static,
{
    let kib = |b: f64| b / 1024.0;
    let top = m
        .cwnd
        .iter()
        .chain(&m.flight)
        .chain(&m.ssthresh)
        .map(|p| kib(p.1))
        .fold(1.0, f64::max)
        * 1.05;
    let mut chart = panel(area, "congestion window", 16).build_cartesian_2d(0.0..span, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("KiB")
        .light_line_style(WHITE)
        .draw()?;
    let fast: Vec<_> = m.episodes.iter().filter(|e| !e.2).collect();
    let timeout: Vec<_> = m.episodes.iter().filter(|e| e.2).collect();
    for (episodes, color, label) in [
        (fast, RETRANSMISSION.mix(0.15), "fast recovery"),
        (timeout, PROBE.mix(0.2), "recovery after a timeout"),
    ] {
        if episodes.is_empty() {
            continue;
        }
        let n = episodes.len();
        chart
            .draw_series(
                episodes
                    .into_iter()
                    .map(|&(a, b, _)| Rectangle::new([(a, 0.0), (b, top)], color.filled())),
            )?
            .label(format!("{label} ({n})"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], color.filled()));
    }
    for (series, color, label) in [
        (&m.flight, FLIGHT, "bytes in flight"),
        (&m.cwnd, CWND, "cwnd"),
        (&m.ssthresh, SSTHRESH, "ssthresh"),
    ] {
        if series.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(
                steps(series, span).into_iter().map(|(t, y)| (t, kib(y))),
                color.stroke_width(if label == "cwnd" { 2 } else { 1 }),
            ))?
            .label(label)
            .legend(legend_line(color));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

/// SRTT and RTO in ms, on a log scale (the RTO starts at a second, the path may be 100 µs).
pub fn rtt<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, m: &Metrics, span: f64) -> Res
where
    DB::ErrorType: 'static,
{
    let all = || {
        m.srtt
            .iter()
            .chain(&m.rto)
            .map(|p| p.1)
            .filter(|v| *v > 0.0)
    };
    let lo = all().fold(f64::INFINITY, f64::min).min(1.0) / 2.0;
    let hi = all().fold(1.0, f64::max) * 2.0;
    let mut chart =
        panel(area, "RTT estimates", 16).build_cartesian_2d(0.0..span, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("ms")
        .light_line_style(WHITE)
        .draw()?;
    for (series, color, label) in [(&m.rto, RTO, "RTO"), (&m.srtt, CWND, "SRTT")] {
        if series.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(
                steps(series, span).into_iter().filter(|p| p.1 > 0.0),
                color.stroke_width(2),
            ))?
            .label(label)
            .legend(legend_line(color));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

/// A trace's figure: the time-sequence graph over cwnd over RTT.
pub fn trace_figure<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, f: &Flow, span: f64) -> Res
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let h = root.dim_in_pixel().1;
    let (seq, rest) = root.split_vertically(sequence_height(h));
    let (cwnd, rtt_area) = rest.split_vertically(h / 4);
    time_sequence(&seq, f, &format!("tapstack's trace: {}", f.name), span)?;
    if let Some(m) = &f.metrics {
        congestion(&cwnd, m, span)?;
        rtt(&rtt_area, m, span)?;
    }
    root.present()?;
    Ok(())
}

/// A pcap's figure: the time-sequence graph alone.
pub fn pcap_figure<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, f: &Flow, span: f64) -> Res
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    time_sequence(&root, f, &format!("pcap: {}", f.name), span)?;
    root.present()?;
    Ok(())
}
