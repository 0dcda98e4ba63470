//! Terminal sparklines: a series as one line of `▁▂▃▄▅▆▇█`.
//!
//! Longer series are split into `width` equal runs of points and each cell
//! shows the *highest* value of its run, so a short spike is never averaged
//! away. Cells are by point index across the whole window, so the lines of
//! different metrics line up in time; a run where the metric is absent is a
//! blank. A flat series sits in the middle row, and so does one whose
//! spread is below a thousandth of its magnitude (a disk at 71.79 % that
//! moves in the fifth digit is flat to a reader, not a cliff).

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The sparkline of `values` (one per point, `None` where the metric is
/// absent) in at most `width` cells.
pub fn sparkline(values: &[Option<f64>], width: usize) -> String {
    let width = width.max(1);
    let cells: Vec<Option<f64>> = if values.len() <= width {
        values.to_vec()
    } else {
        (0..width)
            .map(|i| {
                let (start, end) = (i * values.len() / width, (i + 1) * values.len() / width);
                values[start..end]
                    .iter()
                    .flatten()
                    .copied()
                    .reduce(f64::max)
            })
            .collect()
    };
    let present = cells.iter().flatten().copied();
    let (low, high) = present.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let flat = high - low <= 1e-3 * low.abs().max(high.abs());
    cells
        .iter()
        .map(|cell| match cell {
            None => ' ',
            Some(_) if flat => BARS[3],
            Some(v) => {
                let level = ((v - low) / (high - low) * 7.0).round() as usize;
                BARS[level.min(7)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(values: &[f64]) -> Vec<Option<f64>> {
        values.iter().copied().map(Some).collect()
    }

    #[test]
    fn scales_from_low_to_high() {
        assert_eq!(
            sparkline(&some(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]), 80),
            "▁▂▃▄▅▆▇█"
        );
        assert_eq!(sparkline(&some(&[-5.0, 5.0]), 80), "▁█");
    }

    #[test]
    fn flat_and_missing_values() {
        assert_eq!(sparkline(&some(&[3.0, 3.0, 3.0]), 80), "▄▄▄");
        assert_eq!(sparkline(&some(&[71.790, 71.792, 71.793]), 80), "▄▄▄");
        assert_eq!(sparkline(&some(&[0.0, 0.0]), 80), "▄▄");
        assert_eq!(sparkline(&[Some(0.0), None, Some(7.0)], 80), "▁ █");
        assert_eq!(sparkline(&[], 80), "");
    }

    #[test]
    fn long_series_keep_their_spikes_within_the_width() {
        let mut values = vec![10.0; 100];
        values[57] = 99.0;
        let line = sparkline(&some(&values), 10);
        assert_eq!(line.chars().count(), 10);
        assert_eq!(line, "▁▁▁▁▁█▁▁▁▁");
    }
}
