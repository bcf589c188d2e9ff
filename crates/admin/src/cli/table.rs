//! Plain-text tables for `list` commands and `doctor` (comfy-table): a header row, then columns
//! padded to their widest cell (display width, so wide characters align), no borders, no colours.

use comfy_table::{presets, ContentArrangement, Table};

/// Renders `header` and `rows` as left-aligned columns separated by two spaces, one line each.
pub(crate) fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        // Never wrap: one line per row, whatever the terminal width, so `grep`/`awk` keep working.
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for row in rows {
        table.add_row(row.iter().map(String::as_str));
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table.trim_fmt() + "\n"
}

/// A timestamp in ms as `YYYY-MM-DD HH:MM` UTC, or `-`.
pub(crate) fn ms(ts: Option<i64>) -> String {
    ts.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn columns_align() {
        let t = render(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }

    #[test]
    fn wide_characters_align_by_display_width_and_long_cells_never_wrap() {
        let long = "x".repeat(300);
        let t = render(
            &["NAME", "N"],
            &[
                vec!["日本".into(), "1".into()],
                vec!["ab".into(), long.clone()],
            ],
        );
        assert_eq!(t, format!("NAME  N\n日本  1\nab    {long}\n"));
    }

    #[test]
    fn an_empty_list_is_the_header() {
        assert_eq!(render(&["ID", "NAME"], &[]), "ID  NAME\n");
    }
}
