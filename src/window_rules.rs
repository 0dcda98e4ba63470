//! The window rule the store applies itself: an imported window's status and
//! end. Pure, below the recorder and the store (the store may not import
//! `recorder/`); every other rule of a window's life is in
//! `recorder/window.rs`, whose end-time table lists this one too.

use crate::model::WindowStatus;

/// The status and end time an imported window is stored with, given the
/// status, start and end it was exported with and its newest point's time.
///
/// A window exported while `recording` is stored `interrupted` (no recorder
/// of this database will add to it) and ends at its last point, never
/// before its start, as a window found recording after a crash does. A
/// closed window keeps its status and end; without an end, it ends at its
/// last point, or its start with none.
pub(crate) fn imported_end(
    status: WindowStatus,
    start_ms: i64,
    end_ms: Option<i64>,
    last_point_ms: Option<i64>,
) -> (WindowStatus, i64) {
    match status {
        WindowStatus::Recording => (
            WindowStatus::Interrupted,
            last_point_ms.unwrap_or(start_ms).max(start_ms),
        ),
        status => (status, end_ms.or(last_point_ms).unwrap_or(start_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_ends_recording_windows_as_interrupted_and_keeps_closed_ones() {
        use WindowStatus::*;
        // Recording: interrupted at its last point, never before its start.
        assert_eq!(
            imported_end(Recording, 1_000, None, Some(5_000)),
            (Interrupted, 5_000)
        );
        assert_eq!(
            imported_end(Recording, 1_000, Some(9_000), Some(500)),
            (Interrupted, 1_000)
        );
        assert_eq!(
            imported_end(Recording, 1_000, None, None),
            (Interrupted, 1_000)
        );
        // Closed: its own status and end; else its last point, else its start.
        assert_eq!(
            imported_end(Complete, 1_000, Some(9_000), Some(5_000)),
            (Complete, 9_000)
        );
        assert_eq!(
            imported_end(Truncated, 1_000, None, Some(5_000)),
            (Truncated, 5_000)
        );
        assert_eq!(imported_end(Complete, 1_000, None, None), (Complete, 1_000));
    }
}
