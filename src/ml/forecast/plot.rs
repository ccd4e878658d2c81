//! A forecast chart as a standalone SVG 1.1 document, written without dependencies.
//!
//! What is drawn, back to front: the title at the top; a one-row legend under it (history,
//! forecast, one swatch per band such as "80% interval"); horizontal grid lines at 4–6
//! "nice" y ticks (steps of 1, 2 or 5 × 10^k, or 2.5 × 10^k where none of those gives 4–6;
//! labelled compactly: `1.2k`, `3.5M`, `0.05`, `2e-5`); 4–8 x labels from
//! [`Chart::x_label`] at round positions (multiples of such a step); the interval
//! bands as translucent polygons (lower bounds forward, upper bounds backward), wider levels
//! lighter and drawn first; a dashed vertical line where the forecast starts; the history
//! as a dark polyline; the forecast as a blue polyline that continues from the last observed
//! point; the marked points (anomalies, say) as red circles.
//!
//! Invariants, whatever the input:
//!
//! - the output is always a well-formed SVG document, also for empty series, a single point,
//!   flat series and zero sizes; nothing panics;
//! - non-finite values (and values beyond ±1e300, whose spans would overflow) are left out of
//!   the scaling and break the lines where they sit, so no coordinate in the output is ever
//!   `NaN` or `inf`;
//! - all text (title, x labels) is escaped, and characters XML 1.0 forbids are dropped.
//!
//! `write!` into a `String` cannot fail, hence the ignored results below.

use std::fmt::Write;
use std::ops::RangeInclusive;

/// One series to draw: its history, its forecast and the forecast's intervals.
pub struct Chart<'a> {
    pub title: &'a str,
    /// Observed points (x, value), x in any unit increasing (the caller passes timestamps as f64, e.g. days since epoch), value may be NaN (a gap: the line breaks).
    pub history: &'a [(f64, f64)],
    /// Forecast points (x, mean).
    pub forecast: &'a [(f64, f64)],
    /// Interval bands, widest first is not assumed: (level percent, lo per forecast point, hi per forecast point); drawn as shaded bands, wider levels lighter.
    pub bands: &'a [(f64, Vec<f64>, Vec<f64>)],
    /// Points to mark (x, value), e.g. anomalies: drawn as red circles.
    pub marks: &'a [(f64, f64)],
    /// How to label an x value on the axis (e.g. a date).
    pub x_label: &'a dyn Fn(f64) -> String,
}

/// Renders `chart` as an SVG document of `width` × `height` pixels.
pub fn render_svg(chart: &Chart, width: u32, height: u32) -> String {
    let (width, height) = (f64::from(width), f64::from(height));

    let y_data = Span::of(y_values(chart));
    let y_ticks = nice_ticks(y_data, 4..=6, 5, Placement::Cover);
    let y_labels = compact_labels(&y_ticks);
    let widest_y_label = y_labels.iter().map(|l| text_width(l)).fold(0.0, f64::max);
    let left = (widest_y_label + 14.0).max(36.0);
    let plot_width = (width - left - RIGHT_MARGIN).max(1.0);
    let plot_height = (height - PLOT_TOP - BOTTOM_MARGIN).max(1.0);

    let x_span = Span::of(x_values(chart));
    // Fewer labels on narrow charts, so that dates do not run into each other.
    let x_target = ((plot_width / X_LABEL_SPACING) as usize).clamp(4, 8);
    let x_ticks = nice_ticks(x_span, 4..=8, x_target, Placement::Inside);

    let frame = Frame {
        left,
        top: PLOT_TOP,
        width: plot_width,
        height: plot_height,
        x: x_span,
        // The ticks may reach past the data (covering) but the data never past the axis.
        y: y_ticks.values.iter().fold(y_data, |span, &t| Span {
            lo: span.lo.min(t),
            hi: span.hi.max(t),
        }),
    };
    let bands = bands_widest_first(chart.bands);

    let mut svg = String::new();
    let _ = writeln!(svg, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text class="title" x="{:.1}" y="22" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        width / 2.0,
        escape(chart.title)
    );
    write_legend(&mut svg, chart, &bands, left);
    write_y_axis(&mut svg, &frame, &y_ticks, &y_labels);
    write_x_axis(&mut svg, &frame, &x_ticks, chart.x_label, width);
    write_bands(&mut svg, &frame, chart.forecast, &bands);
    write_series(&mut svg, &frame, chart);
    for &(x, y) in chart.marks {
        if let Some((px, py)) = frame.point(x, y) {
            let _ = writeln!(
                svg,
                r#"<circle class="mark" cx="{px:.1}" cy="{py:.1}" r="4" fill="none" stroke="{MARK_COLOR}" stroke-width="1.5"/>"#
            );
        }
    }
    let _ = writeln!(
        svg,
        r##"<rect class="frame" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#888888"/>"##,
        frame.left, frame.top, frame.width, frame.height
    );
    svg.push_str("</svg>\n");
    svg
}

/// Values beyond this magnitude are treated as non-finite: keeping data within ±1e300 keeps
/// spans, paddings and pixel positions finite.
const MAX_MAGNITUDE: f64 = 1e300;

const HISTORY_COLOR: &str = "#222222";
const FORECAST_COLOR: &str = "#1f77b4";
const MARK_COLOR: &str = "#d62728";
const GRID_COLOR: &str = "#e0e0e0";

/// Where the plot area starts: below the title (baseline 22) and the legend (baseline 42).
const PLOT_TOP: f64 = 56.0;
const LEGEND_BASELINE: f64 = 42.0;
const BOTTOM_MARGIN: f64 = 34.0;
const RIGHT_MARGIN: f64 = 16.0;
/// Room one x label (a date, typically) needs, including the gap to its neighbours.
const X_LABEL_SPACING: f64 = 90.0;
/// Rough width of a character at 12 px: there are no font metrics to lay out text with.
const CHAR_WIDTH: f64 = 7.0;

/// Tick steps people read at a glance, 1, 2 and 5 × 10^k, and 2.5 × 10^k only when none of
/// those gives a wanted number of ticks: steps a factor 2.5 apart can jump over the wanted
/// counts (a y span of 3573..4484 gets 7 ticks by 200 and 3 by 500, but 5 by 250), steps at
/// most a factor 2 apart cannot.
const NICE_STEPS: [f64; 4] = [1.0, 2.0, 5.0, 2.5];
const FALLBACK_STEP: usize = 3;

fn usable(v: f64) -> bool {
    v.is_finite() && v.abs() <= MAX_MAGNITUDE
}

/// A non-empty interval `lo < hi` of data values.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    lo: f64,
    hi: f64,
}

impl Span {
    /// The span of the usable `values`, padded when it is empty or (nearly) flat, since a
    /// zero span cannot be scaled onto pixels.
    fn of(values: impl Iterator<Item = f64>) -> Span {
        let (lo, hi) = values
            .filter(|v| usable(*v))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        if lo > hi {
            return Span { lo: 0.0, hi: 1.0 };
        }
        // Below 1e-250, or within float noise of the values themselves, a span cannot be
        // divided into ticks whose labels differ.
        if hi - lo < 1e-250 || hi - lo <= lo.abs().max(hi.abs()) * 1e-12 {
            let pad = (lo.abs() * 0.1).max(1.0);
            return Span {
                lo: lo - pad,
                hi: hi + pad,
            };
        }
        Span { lo, hi }
    }
}

fn y_values<'a>(chart: &'a Chart) -> impl Iterator<Item = f64> + 'a {
    let drawn_bands = chart.bands.iter().flat_map(|(_, lo, hi)| {
        chart
            .forecast
            .iter()
            .zip(lo.iter().zip(hi))
            .filter(|((x, _), _)| usable(*x))
            .flat_map(|(_, (&lo, &hi))| [lo, hi])
    });
    chart
        .history
        .iter()
        .chain(chart.forecast)
        .chain(chart.marks)
        .filter(|(x, _)| usable(*x))
        .map(|(_, y)| *y)
        .chain(drawn_bands)
}

fn x_values<'a>(chart: &'a Chart) -> impl Iterator<Item = f64> + 'a {
    chart
        .history
        .iter()
        .chain(chart.forecast)
        .chain(chart.marks)
        .filter(|(_, y)| usable(*y))
        .map(|(x, _)| *x)
}

/// Evenly spaced tick values, `values[i] = (first + i) × step`.
#[derive(Debug)]
struct Ticks {
    values: Vec<f64>,
    step: f64,
}

/// Whether the ticks reach just past the span (the y axis, which then ends on a labelled
/// tick) or stay within it (the x axis, where the data should fill the width).
#[derive(Debug, Clone, Copy)]
enum Placement {
    Cover,
    Inside,
}

/// Tolerance, in steps, for a bound on a tick up to float noise (0.3 / 0.1 = 2.9999…).
const ON_TICK: f64 = 1e-9;

/// Ticks at multiples of a round step over `span`: the step from [`NICE_STEPS`] whose tick
/// count lies in `wanted` and is nearest to `target`.
fn nice_ticks(
    span: Span,
    wanted: RangeInclusive<usize>,
    target: usize,
    placement: Placement,
) -> Ticks {
    let index_bounds = |step: f64| match placement {
        Placement::Cover => (
            (span.lo / step + ON_TICK).floor(),
            (span.hi / step - ON_TICK).ceil(),
        ),
        Placement::Inside => (
            (span.lo / step - ON_TICK).ceil(),
            (span.hi / step + ON_TICK).floor(),
        ),
    };
    let count = |step: f64| {
        let (first, last) = index_bounds(step);
        (last - first + 1.0).max(0.0) as usize
    };
    // The span is at most 50 steps of the smallest candidate and 1/50 of the largest, which
    // brackets every count from 1 to 8.
    let decade = (span.hi - span.lo).log10().floor() as i32;
    let step = (decade - 2..=decade + 1)
        .flat_map(|k| {
            NICE_STEPS
                .iter()
                .enumerate()
                .map(move |(preference, m)| (preference, m * 10f64.powi(k)))
        })
        .min_by_key(|&(preference, step)| {
            let count = count(step);
            (
                !wanted.contains(&count),
                preference == FALLBACK_STEP,
                count.abs_diff(target),
                preference,
            )
        })
        .map_or(span.hi - span.lo, |(_, step)| step);
    let first = index_bounds(step).0;
    let values = (0..count(step))
        .map(|i| (first + i as f64) * step)
        .collect();
    Ticks { values, step }
}

/// Labels for evenly spaced ticks, each in its own unit (`800`, `1k`, `1.2k`) with just the
/// decimals needed to tell neighbours apart.
fn compact_labels(ticks: &Ticks) -> Vec<String> {
    let largest = ticks.values.iter().fold(0.0, |m: f64, v| m.max(v.abs()));
    // Beyond trillions or below thousandths, scientific notation is the short form; for all
    // ticks alike, so that the axis reads in one notation.
    let scientific = !(1e-3..1e15).contains(&largest);
    ticks
        .values
        .iter()
        .map(|&v| compact_label(v, ticks.step, scientific))
        .collect()
}

const SUFFIXES: [(f64, &str); 4] = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")];

fn compact_label(value: f64, step: f64, scientific: bool) -> String {
    // Also catches float noise and -0 around zero.
    if value.abs() < step / 2.0 {
        return "0".to_string();
    }
    if scientific {
        let digits = decimals(step / 10f64.powi(value.abs().log10().floor() as i32));
        let text = format!("{value:.digits$e}");
        return match text.split_once('e') {
            Some((mantissa, exponent)) => format!("{}e{exponent}", trim_zeros(mantissa)),
            None => text,
        };
    }
    let (scale, suffix) = SUFFIXES
        .into_iter()
        .find(|&(scale, _)| value.abs() >= scale)
        .unwrap_or((1.0, ""));
    let digits = decimals(step / scale);
    format!(
        "{}{suffix}",
        trim_zeros(&format!("{:.digits$}", value / scale))
    )
}

/// Decimals needed to write `step` (1, 2, 2.5 or 5 × 10^k) exactly.
fn decimals(step: f64) -> usize {
    (0..=15)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(15)
}

fn trim_zeros(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

/// Text safe in XML character data and attribute values: markup characters become entities
/// and characters XML 1.0 forbids (control codes, U+FFFE, U+FFFF) are dropped.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\t' | '\n' | '\r' => escaped.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => escaped.push(c),
        }
    }
    escaped
}

fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * CHAR_WIDTH
}

/// The plot area in pixels and the data spans mapped onto it.
struct Frame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    x: Span,
    y: Span,
}

impl Frame {
    fn px_x(&self, x: f64) -> f64 {
        self.left + (x - self.x.lo) / (self.x.hi - self.x.lo) * self.width
    }

    fn px_y(&self, y: f64) -> f64 {
        self.top + (self.y.hi - y) / (self.y.hi - self.y.lo) * self.height
    }

    /// The pixel position of a data point, `None` for a gap (a non-finite coordinate).
    fn point(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        (usable(x) && usable(y)).then(|| (self.px_x(x), self.px_y(y)))
    }

    fn bottom(&self) -> f64 {
        self.top + self.height
    }
}

/// A band's level, bounds and fill opacity.
struct Band<'a> {
    level: f64,
    lo: &'a [f64],
    hi: &'a [f64],
    opacity: f64,
}

/// The bands widest level first, so that narrower ones are painted over them, each lighter
/// the wider it is.
fn bands_widest_first(bands: &[(f64, Vec<f64>, Vec<f64>)]) -> Vec<Band<'_>> {
    let mut sorted: Vec<_> = bands.iter().collect();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let last = sorted.len().saturating_sub(1).max(1) as f64;
    sorted
        .into_iter()
        .enumerate()
        .map(|(rank, (level, lo, hi))| Band {
            level: *level,
            lo,
            hi,
            opacity: 0.15 + 0.2 * rank as f64 / last,
        })
        .collect()
}

fn band_label(level: f64) -> String {
    if level.is_finite() {
        format!("{level}% interval")
    } else {
        "interval".to_string()
    }
}

/// What a legend entry shows before its label.
enum Swatch {
    Line(&'static str),
    Band(f64),
}

fn write_legend(svg: &mut String, chart: &Chart, bands: &[Band], left: f64) {
    let lines = [
        (!chart.history.is_empty(), HISTORY_COLOR, "history"),
        (!chart.forecast.is_empty(), FORECAST_COLOR, "forecast"),
    ]
    .into_iter()
    .filter(|(shown, _, _)| *shown)
    .map(|(_, color, label)| (Swatch::Line(color), label.to_string()));
    let band_swatches = bands
        .iter()
        .map(|band| (Swatch::Band(band.opacity), band_label(band.level)));
    let swatch_y = LEGEND_BASELINE - 4.0;
    let mut x = left;
    let _ = writeln!(svg, r#"<g class="legend">"#);
    for (swatch, label) in lines.chain(band_swatches) {
        let _ = match swatch {
            Swatch::Line(color) => writeln!(
                svg,
                r#"<line x1="{x:.1}" y1="{swatch_y}" x2="{:.1}" y2="{swatch_y}" stroke="{color}" stroke-width="2"/>"#,
                x + 18.0
            ),
            Swatch::Band(opacity) => writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="18" height="10" fill="{FORECAST_COLOR}" fill-opacity="{opacity:.2}"/>"#,
                swatch_y - 5.0
            ),
        };
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{LEGEND_BASELINE}">{}</text>"#,
            x + 23.0,
            escape(&label)
        );
        x += 23.0 + text_width(&label) + 16.0;
    }
    let _ = writeln!(svg, "</g>");
}

fn write_y_axis(svg: &mut String, frame: &Frame, ticks: &Ticks, labels: &[String]) {
    let _ = writeln!(svg, r#"<g class="y-axis">"#);
    let right = frame.left + frame.width;
    for (&tick, label) in ticks.values.iter().zip(labels) {
        let y = frame.px_y(tick);
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="{GRID_COLOR}"/>"#,
            frame.left
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            frame.left - 6.0,
            y + 4.0,
            escape(label)
        );
    }
    let _ = writeln!(svg, "</g>");
}

fn write_x_axis(
    svg: &mut String,
    frame: &Frame,
    ticks: &Ticks,
    x_label: &dyn Fn(f64) -> String,
    canvas_width: f64,
) {
    let _ = writeln!(svg, r#"<g class="x-axis">"#);
    let bottom = frame.bottom();
    for &tick in &ticks.values {
        let x = frame.px_x(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{bottom:.1}" x2="{x:.1}" y2="{:.1}" stroke="#888888"/>"##,
            bottom + 4.0
        );
        let label = x_label(tick);
        // A label on the last tick would stick out of the canvas by half its width.
        let half = text_width(&label) / 2.0;
        let centre = x.min(canvas_width - half).max(half);
        let _ = writeln!(
            svg,
            r#"<text x="{centre:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            bottom + 18.0,
            escape(&label)
        );
    }
    let _ = writeln!(svg, "</g>");
}

/// Splits a sequence at its gaps (`None`) into runs of consecutive drawable items.
fn runs<T>(items: impl Iterator<Item = Option<T>>) -> Vec<Vec<T>> {
    let mut runs = Vec::new();
    let mut current = Vec::new();
    for item in items {
        match item {
            Some(item) => current.push(item),
            None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

fn points_attribute<'a>(points: impl Iterator<Item = &'a (f64, f64)>) -> String {
    let mut text = String::new();
    for (x, y) in points {
        let separator = if text.is_empty() { "" } else { " " };
        let _ = write!(text, "{separator}{x:.1},{y:.1}");
    }
    text
}

fn write_bands(svg: &mut String, frame: &Frame, forecast: &[(f64, f64)], bands: &[Band]) {
    for band in bands {
        let corners = forecast
            .iter()
            .zip(band.lo.iter().zip(band.hi))
            .map(|(&(x, _), (&lo, &hi))| frame.point(x, lo).zip(frame.point(x, hi)));
        // A lone point encloses no area.
        for piece in runs(corners).iter().filter(|piece| piece.len() >= 2) {
            let outline: Vec<(f64, f64)> = piece
                .iter()
                .map(|(lo, _)| *lo)
                .chain(piece.iter().rev().map(|(_, hi)| *hi))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polygon class="band" points="{}" fill="{FORECAST_COLOR}" fill-opacity="{:.2}" stroke="none"/>"#,
                points_attribute(outline.iter()),
                band.opacity
            );
        }
    }
}

/// Draws runs of points as polylines; a run of one point as a dot, which a polyline would not
/// show.
fn write_line(svg: &mut String, class: &str, color: &str, runs: &[Vec<(f64, f64)>]) {
    for run in runs {
        match run.as_slice() {
            [(x, y)] => {
                let _ = writeln!(
                    svg,
                    r#"<circle class="{class}" cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{color}"/>"#
                );
            }
            _ => {
                let _ = writeln!(
                    svg,
                    r#"<polyline class="{class}" points="{}" fill="none" stroke="{color}" stroke-width="2" stroke-linejoin="round"/>"#,
                    points_attribute(run.iter())
                );
            }
        }
    }
}

fn write_series(svg: &mut String, frame: &Frame, chart: &Chart) {
    let drawable = |&(x, y): &(f64, f64)| frame.point(x, y);
    let forecast_start = chart.forecast.iter().find_map(drawable);
    if let Some((x, _)) = forecast_start {
        let _ = writeln!(
            svg,
            r##"<line class="forecast-start" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#888888" stroke-dasharray="4 3"/>"##,
            frame.top,
            frame.bottom()
        );
    }
    write_line(
        svg,
        "history",
        HISTORY_COLOR,
        &runs(chart.history.iter().map(drawable)),
    );
    // The forecast line starts at the last observation, so the two read as one series.
    // Only when the forecast's first point is drawable: across a gap it would be a lone dot.
    let anchor = chart
        .forecast
        .first()
        .and_then(drawable)
        .and(chart.history.iter().rev().find_map(drawable));
    write_line(
        svg,
        "forecast",
        FORECAST_COLOR,
        &runs(
            anchor
                .into_iter()
                .map(Some)
                .chain(chart.forecast.iter().map(drawable)),
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(x: f64) -> String {
        format!("d{x}")
    }

    fn chart<'a>(
        history: &'a [(f64, f64)],
        forecast: &'a [(f64, f64)],
        bands: &'a [(f64, Vec<f64>, Vec<f64>)],
        marks: &'a [(f64, f64)],
    ) -> Chart<'a> {
        Chart {
            title: "Sales",
            history,
            forecast,
            bands,
            marks,
            x_label: &day,
        }
    }

    /// Checks XML well-formedness the way this module can break it: one root element, tags
    /// balanced and nested, quoted attributes, and `&`/`<` only as markup or entities.
    fn assert_well_formed(xml: &str) {
        fn assert_entities(text: &str) {
            for (at, _) in text.match_indices('&') {
                let rest = &text[at..];
                let entity = &rest[..rest.find(';').expect("unterminated entity") + 1];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity),
                    "bad entity {entity}"
                );
            }
        }
        let body = xml
            .strip_prefix(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
            .expect("XML declaration");
        let mut open: Vec<&str> = Vec::new();
        let mut roots = 0;
        let mut rest = body;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            assert!(!text.contains('>'), "stray '>' in {text:?}");
            assert_entities(text);
            assert!(
                !open.is_empty() || text.trim().is_empty(),
                "text outside the root: {text:?}"
            );
            let tag_and_rest = &rest[start + 1..];
            // A tag ends at the first '>' outside a quoted attribute value.
            let mut quoted = false;
            let end = tag_and_rest
                .char_indices()
                .find(|&(_, c)| {
                    quoted ^= c == '"';
                    c == '>' && !quoted
                })
                .expect("unterminated tag")
                .0;
            let tag = &tag_and_rest[..end];
            rest = &tag_and_rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name), "mismatched </{name}>");
                continue;
            }
            assert!(!tag.contains('<'), "'<' inside tag {tag:?}");
            assert_eq!(
                tag.matches('"').count() % 2,
                0,
                "unbalanced quotes: {tag:?}"
            );
            assert_entities(tag);
            let name = tag.split([' ', '/', '\n']).next().unwrap_or_default();
            assert!(!name.is_empty(), "tag without a name: {tag:?}");
            if open.is_empty() {
                roots += 1;
            }
            if !tag.ends_with('/') {
                open.push(name);
            }
        }
        assert!(rest.trim().is_empty(), "text after the root: {rest:?}");
        assert!(open.is_empty(), "unclosed: {open:?}");
        assert_eq!(roots, 1, "one root element");
        assert!(
            body.trim_start()
                .starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg""#)
        );
    }

    fn assert_finite(svg: &str) {
        for bad in ["NaN", "nan", "inf"] {
            assert!(!svg.contains(bad), "{bad} in output:\n{svg}");
        }
    }

    /// The points of every polyline of `class`, in pixels.
    fn polyline_points(svg: &str, class: &str) -> Vec<Vec<(f64, f64)>> {
        let marker = format!(r#"<polyline class="{class}" points=""#);
        svg.match_indices(&marker)
            .map(|(at, _)| {
                let points = &svg[at + marker.len()..];
                points[..points.find('"').unwrap()]
                    .split(' ')
                    .map(|pair| {
                        let (x, y) = pair.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    fn example_history() -> Vec<(f64, f64)> {
        (0..24)
            .map(|i| (f64::from(i), 100.0 + f64::from(i) * 3.0))
            .collect()
    }

    fn example_forecast() -> Vec<(f64, f64)> {
        (24..30)
            .map(|i| (f64::from(i), 172.0 + f64::from(i - 24)))
            .collect()
    }

    fn example_bands(forecast: &[(f64, f64)]) -> Vec<(f64, Vec<f64>, Vec<f64>)> {
        [(80.0, 10.0), (95.0, 20.0)]
            .into_iter()
            .map(|(level, half): (f64, f64)| {
                (
                    level,
                    forecast.iter().map(|(_, y)| y - half).collect(),
                    forecast.iter().map(|(_, y)| y + half).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn full_chart_is_well_formed_with_every_element() {
        let history = example_history();
        let forecast = example_forecast();
        let bands = example_bands(&forecast);
        let marks = [(5.0, 115.0)];
        let svg = render_svg(&chart(&history, &forecast, &bands, &marks), 800, 400);
        assert_well_formed(&svg);
        assert_finite(&svg);
        assert_eq!(polyline_points(&svg, "history").len(), 1);
        assert_eq!(polyline_points(&svg, "forecast").len(), 1);
        assert_eq!(svg.matches(r#"<polygon class="band""#).count(), 2);
        assert_eq!(svg.matches(r#"class="mark""#).count(), 1);
        assert_eq!(svg.matches(r#"class="forecast-start""#).count(), 1);
        for entry in [
            ">history<",
            ">forecast<",
            ">80% interval<",
            ">95% interval<",
        ] {
            assert!(svg.contains(entry), "legend lacks {entry}");
        }
    }

    #[test]
    fn title_and_labels_are_escaped() {
        let history = example_history();
        let label = |x: f64| format!("<{x}> & \"q\"");
        let mut chart = chart(&history, &[], &[], &[]);
        chart.title = "Sales <Q1> & \"more\" 'x'\u{1}";
        chart.x_label = &label;
        let svg = render_svg(&chart, 600, 300);
        assert_well_formed(&svg);
        assert!(svg.contains(">Sales &lt;Q1&gt; &amp; &quot;more&quot; &apos;x&apos;</text>"));
        assert!(svg.contains("&lt;10&gt; &amp; &quot;q&quot;"));
        assert!(!svg.contains('\u{1}'));
    }

    #[test]
    fn forecast_lies_right_of_history_and_starts_at_its_last_point() {
        let history = example_history();
        let forecast = example_forecast();
        let svg = render_svg(&chart(&history, &forecast, &[], &[]), 800, 400);
        let history_points = polyline_points(&svg, "history").concat();
        let forecast_points = polyline_points(&svg, "forecast").concat();
        let history_right = history_points.iter().map(|p| p.0).fold(f64::MIN, f64::max);
        assert!(forecast_points.iter().all(|p| p.0 >= history_right));
        assert_eq!(forecast_points[0], *history_points.last().unwrap());
        assert_eq!(forecast_points.len(), forecast.len() + 1);
    }

    #[test]
    fn non_finite_values_break_lines_and_never_reach_the_output() {
        let mut history = example_history();
        history[5].1 = f64::NAN;
        history[12].1 = f64::INFINITY;
        history[13].0 = f64::NEG_INFINITY;
        history.push((f64::NAN, 1.0));
        let mut forecast = example_forecast();
        forecast[2].1 = f64::NAN;
        let mut bands = example_bands(&forecast);
        bands[0].1[3] = f64::NAN;
        bands[1].2[0] = f64::INFINITY;
        let bands_with_nan_level = [(f64::NAN, vec![1.0, 2.0], vec![3.0, 4.0])];
        let marks = [(f64::NAN, 1.0), (3.0, f64::INFINITY), (4.0, 1e308)];
        for bands in [&bands[..], &bands_with_nan_level[..]] {
            let svg = render_svg(&chart(&history, &forecast, bands, &marks), 800, 400);
            assert_well_formed(&svg);
            assert_finite(&svg);
            assert_eq!(polyline_points(&svg, "history").len(), 3);
            assert_eq!(svg.matches(r#"class="mark""#).count(), 0);
        }
        let svg = render_svg(&chart(&history, &forecast, &bands, &[]), 800, 400);
        // The 80% band breaks at its NaN; the 95% one loses its first point.
        assert_eq!(svg.matches(r#"<polygon class="band""#).count(), 3);
    }

    #[test]
    fn degenerate_inputs_still_give_valid_svg() {
        let one = [(10.0, 5.0)];
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i), 7.0)).collect();
        let all_nan = [(f64::NAN, f64::NAN), (1.0, f64::NAN)];
        let series: [&[(f64, f64)]; 4] = [&[], &one, &flat, &all_nan];
        let short_band = [(80.0, vec![1.0], vec![2.0, 3.0, 4.0])];
        for history in series {
            for forecast in series {
                for (width, height) in [(800, 400), (0, 0), (1, 1)] {
                    let chart = chart(history, forecast, &short_band, &one);
                    let svg = render_svg(&chart, width, height);
                    assert_well_formed(&svg);
                    assert_finite(&svg);
                }
            }
        }
    }

    #[test]
    fn single_point_is_drawn_as_a_dot() {
        let one = [(10.0, 5.0)];
        let svg = render_svg(&chart(&one, &[], &[], &[]), 400, 300);
        assert_eq!(svg.matches(r#"<circle class="history""#).count(), 1);
    }

    #[test]
    fn flat_series_gets_padding_around_its_value() {
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i), 7.0)).collect();
        let span = Span::of(flat.iter().map(|p| p.1));
        assert!(span.lo < 7.0 && span.hi > 7.0);
        let svg = render_svg(&chart(&flat, &[], &[], &[]), 800, 400);
        let line = &polyline_points(&svg, "history")[0];
        // Mid-height, not on the frame.
        assert!(line.iter().all(|&(_, y)| y > 60.0 && y < 360.0));
        assert_eq!(Span::of([0.0, 0.0].into_iter()), Span { lo: -1.0, hi: 1.0 });
        assert_eq!(Span::of(std::iter::empty()), Span { lo: 0.0, hi: 1.0 });
    }

    #[test]
    fn y_ticks_are_nice() {
        let ticks = nice_ticks(Span { lo: 0.0, hi: 97.0 }, 4..=6, 5, Placement::Cover);
        assert_eq!(ticks.values, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let ticks = nice_ticks(Span { lo: 0.12, hi: 0.31 }, 4..=6, 5, Placement::Cover);
        assert_eq!(compact_labels(&ticks), ["0.1", "0.2", "0.3", "0.4"]);
        let ticks = nice_ticks(
            Span {
                lo: 3573.0,
                hi: 4484.0,
            },
            4..=6,
            5,
            Placement::Cover,
        );
        assert_eq!(
            compact_labels(&ticks),
            ["3.5k", "3.75k", "4k", "4.25k", "4.5k"]
        );
    }

    /// Spans from 1e-6 to 1e12 wide at every offset: always 4–6 y ticks and 4–8 x labels,
    /// all on multiples of the step, covering (y) or inside (x) the span.
    #[test]
    fn tick_counts_stay_in_range_for_any_span() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut uniform = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..20_000 {
            let width = 10f64.powf(uniform() * 18.0 - 6.0);
            let lo = (uniform() - 0.5) * width * 10.0;
            let span = Span { lo, hi: lo + width };
            let y = nice_ticks(span, 4..=6, 5, Placement::Cover);
            assert!(
                (4..=6).contains(&y.values.len()),
                "{span:?}: {:?}",
                y.values
            );
            assert!(y.values[0] <= span.lo && *y.values.last().unwrap() >= span.hi);
            for target in 4..=8 {
                let x = nice_ticks(span, 4..=8, target, Placement::Inside);
                assert!(
                    (4..=8).contains(&x.values.len()),
                    "{span:?}: {:?}",
                    x.values
                );
                let slack = x.step * 1e-6;
                assert!(x.values[0] >= span.lo - slack);
                assert!(*x.values.last().unwrap() <= span.hi + slack);
            }
        }
    }

    #[test]
    fn x_labels_come_from_the_caller_at_round_positions() {
        let history: Vec<(f64, f64)> = (0..=100).map(|i| (f64::from(i), 1.0)).collect();
        let svg = render_svg(&chart(&history, &[], &[], &[]), 800, 400);
        for label in ["d0<", "d20<", "d40<", "d60<", "d80<", "d100<"] {
            assert!(svg.contains(label), "no {label}");
        }
    }

    #[test]
    fn tick_labels_are_compact() {
        let labels = |values: &[f64], step: f64| {
            compact_labels(&Ticks {
                values: values.to_vec(),
                step,
            })
        };
        assert_eq!(
            labels(&[1000.0, 1200.0, 1400.0], 200.0),
            ["1k", "1.2k", "1.4k"]
        );
        assert_eq!(labels(&[0.0, 2.5e6, 5e6], 2.5e6), ["0", "2.5M", "5M"]);
        assert_eq!(labels(&[3e9, 3.5e9], 5e8), ["3B", "3.5B"]);
        assert_eq!(labels(&[-1e12, 0.0, 1e12], 1e12), ["-1T", "0", "1T"]);
        assert_eq!(labels(&[0.0, 0.05, 0.1], 0.05), ["0", "0.05", "0.1"]);
        assert_eq!(
            labels(&[0.0, 200.0, 400.0, 600.0, 800.0, 1000.0], 200.0),
            ["0", "200", "400", "600", "800", "1k"]
        );
        assert_eq!(labels(&[-2e-4, 0.0, 2e-4], 2e-4), ["-2e-4", "0", "2e-4"]);
        assert_eq!(labels(&[-0.0, 10.0], 10.0), ["0", "10"]);
        assert_eq!(labels(&[0.0, 5e14, 1e15], 5e14), ["0", "5e14", "1e15"]);
        assert_eq!(labels(&[0.0, 5e-5, 1e-4], 5e-5), ["0", "5e-5", "1e-4"]);
    }

    #[test]
    fn huge_and_tiny_magnitudes_render() {
        for scale in [1e-12, 1e-3, 1e6, 1e12, 1e200, 1e290] {
            let history: Vec<(f64, f64)> = (0..20)
                .map(|i| (f64::from(i), scale * (1.0 + f64::from(i))))
                .collect();
            let svg = render_svg(&chart(&history, &[], &[], &[]), 800, 400);
            assert_well_formed(&svg);
            assert_finite(&svg);
            assert_eq!(polyline_points(&svg, "history")[0].len(), 20);
        }
        let extremes = [(0.0, -1e300), (1.0, 1e300), (2.0, f64::MAX), (3.0, 1e-310)];
        let svg = render_svg(&chart(&extremes, &extremes, &[], &extremes), 800, 400);
        assert_well_formed(&svg);
        assert_finite(&svg);
        let timestamps: Vec<(f64, f64)> = (0..30)
            .map(|i| (1.7e9 + f64::from(i) * 86_400.0, f64::from(i)))
            .collect();
        let svg = render_svg(&chart(&timestamps, &[], &[], &[]), 800, 400);
        assert_well_formed(&svg);
        assert_finite(&svg);
    }

    #[test]
    fn wider_bands_are_drawn_first_and_lighter() {
        let forecast = example_forecast();
        let mut bands = example_bands(&forecast);
        assert_eq!(bands[0].0, 80.0);
        let svg = render_svg(&chart(&[], &forecast, &bands, &[]), 800, 400);
        bands.reverse();
        assert_eq!(
            svg,
            render_svg(&chart(&[], &forecast, &bands, &[]), 800, 400)
        );
        let polygon_opacities: Vec<&str> = svg
            .lines()
            .filter(|line| line.starts_with("<polygon"))
            .map(|line| line.split(r#"fill-opacity=""#).nth(1).unwrap())
            .map(|rest| &rest[..rest.find('"').unwrap()])
            .collect();
        assert_eq!(polygon_opacities, ["0.15", "0.35"]);
        let legend_95 = svg.find(">95% interval<").unwrap();
        assert!(legend_95 < svg.find(">80% interval<").unwrap());
    }
}
