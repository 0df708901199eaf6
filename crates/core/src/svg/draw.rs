//! The SVG primitives every part of the picture uses: colour ramps,
//! escaped text, strip titles, rectangles, hex axes and legends.

use super::{Band, EMPTY_FILL, PLOT_W, PLOT_X};
use std::fmt::Write;

/// A colour on a hue ramp, `t` in [0, 1], quantised so neighbouring
/// columns merge into one rectangle.
pub(super) fn ramp(t: f64, from_hue: f64, to_hue: f64) -> String {
    let t = (t.clamp(0.0, 1.0) * 48.0).round() / 48.0;
    let h = from_hue + (to_hue - from_hue) * t;
    hsl(h, 0.85, 0.48)
}

/// An HSL colour as `#rrggbb`.
fn hsl(h: f64, s: f64, l: f64) -> String {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = (h.rem_euclid(360.0)) / 60.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let q = |v: f64| ((v + m) * 255.0).round() as u8;
    format!("#{:02x}{:02x}{:02x}", q(r), q(g), q(b))
}

/// Buffer offset: red at 0 through yellow and green to blue-violet at the end.
pub(super) fn offset_colour(t: f64) -> String {
    ramp(t, 0.0, 270.0)
}

/// Run length, as a fraction of the log scale from one page to the
/// largest: short runs orange-red, long runs deep blue.
pub(super) fn run_colour(t: f64) -> String {
    ramp(t, 20.0, 230.0)
}

/// Text escaped for SVG content and attributes.
pub(super) fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A strip's title, just above it.
pub(super) fn label(o: &mut String, band: Band, text: &str) {
    let _ = write!(
        o,
        r#"<text x="{PLOT_X}" y="{}">{}</text>"#,
        band.y - 8.0,
        esc(text)
    );
}

/// An empty, outlined strip: nothing of the buffer lies there.
pub(super) fn empty_strip(o: &mut String, band: Band) {
    let _ = write!(
        o,
        r##"<rect x="{PLOT_X}" y="{}" width="{PLOT_W}" height="{}" fill="{EMPTY_FILL}" stroke="#999"/>"##,
        band.y, band.h
    );
}

/// One rectangle per run of equal-coloured pixel columns.
pub(super) fn paint(o: &mut String, runs: &[(usize, usize, String)], band: Band) {
    for (start, end, colour) in runs {
        let _ = write!(
            o,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{colour}"/>"#,
            PLOT_X + *start as f64,
            band.y,
            end - start,
            band.h
        );
    }
}

/// Five hex labels under a strip.
pub(super) fn axis(o: &mut String, band: Band, lo: u64, hi: u64) {
    let y = band.y + band.h;
    for k in 0..=4u64 {
        let at = lo + ((hi - lo) as u128 * k as u128 / 4) as u64;
        let x = PLOT_X + PLOT_W as f64 * k as f64 / 4.0;
        let anchor = match k {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            o,
            r##"<line x1="{x}" y1="{y}" x2="{x}" y2="{}" stroke="#666"/><text x="{x}" y="{}" text-anchor="{anchor}">{at:#x}</text>"##,
            y + 5.0,
            y + 18.0
        );
    }
}

/// A legend: a colour ramp of 24 steps with its two ends labelled.
pub(super) fn gradient(
    o: &mut String,
    y: f64,
    x: f64,
    from: &str,
    to: &str,
    colour: fn(f64) -> String,
) {
    let _ = write!(o, r#"<text x="{x}" y="{}">{}</text>"#, y + 11.0, esc(from));
    let x0 = x + 100.0;
    for i in 0..24 {
        let _ = write!(
            o,
            r#"<rect x="{}" y="{y}" width="13" height="14" fill="{}"/>"#,
            x0 + i as f64 * 13.0,
            colour(i as f64 / 23.0)
        );
    }
    let _ = write!(
        o,
        r#"<text x="{}" y="{}">{}</text>"#,
        x0 + 24.0 * 13.0 + 6.0,
        y + 11.0,
        esc(to)
    );
}
