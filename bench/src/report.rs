//! The result table: printed at the end of a run and appended to
//! `bench/results.md` with the machine and the date.

use std::io::Write;
use std::path::Path;

use crate::error::BenchError;

/// One figure of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Scenario and its parameters, e.g. `cold aws N=1000 K=500`.
    pub scenario: String,
    /// What was measured.
    pub figure: String,
    /// The measured value with its unit.
    pub value: String,
    /// What to compare it with (an ESO or provider anchor), or a note.
    pub anchor: String,
}

impl Row {
    /// A row from its four cells.
    pub fn new(scenario: impl Into<String>, figure: impl Into<String>, value: impl Into<String>, anchor: impl Into<String>) -> Row {
        Row { scenario: scenario.into(), figure: figure.into(), value: value.into(), anchor: anchor.into() }
    }
}

/// Renders rows as a Markdown table (also readable as plain text).
pub fn markdown_table(rows: &[Row]) -> String {
    let headers = ["scenario", "figure", "value", "anchor / note"];
    let cells: Vec<[&str; 4]> =
        rows.iter().map(|r| [r.scenario.as_str(), r.figure.as_str(), r.value.as_str(), r.anchor.as_str()]).collect();
    let mut widths = headers.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |row: [&str; 4]| {
        let padded: Vec<String> =
            row.iter().zip(widths).map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count()))).collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(headers);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
    for row in cells {
        out.push_str(&line(row));
    }
    out
}

/// The machine a run was measured on.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// `nproc`: cores this process may use.
    pub cores: String,
    /// The CPU model from `/proc/cpuinfo`.
    pub cpu: String,
    /// Total memory from `/proc/meminfo`.
    pub memory: String,
}

impl Machine {
    /// Reads the machine description; unknown parts say so.
    pub fn detect() -> Machine {
        let cores = std::process::Command::new("nproc")
            .output()
            .ok()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".to_string());
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string()))
            .unwrap_or_else(|| "unknown CPU".to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:").and_then(|r| r.split_whitespace().next()).and_then(|kib| kib.parse::<u64>().ok()))
            .map(|kib| format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown memory".to_string());
        Machine { cores, cpu, memory }
    }
}

/// Appends one run's section to the results file (created with a header
/// when missing).
pub fn append_results(path: &Path, machine: &Machine, notes: &str, rows: &[Row]) -> Result<(), BenchError> {
    let exists = path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| BenchError::File { action: "opening", path: path.to_path_buf(), source })?;
    let mut text = String::new();
    if !exists {
        text.push_str("# Benchmark results\n\nAppended by `make bench` (see README.md for the method). Newest last.\n");
    }
    let date = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC");
    text.push_str(&format!(
        "\n## {date}: {} cores (nproc), {}, {}\n\n{notes}\n\n{}",
        machine.cores,
        machine.cpu,
        machine.memory,
        markdown_table(rows)
    ));
    file.write_all(text.as_bytes()).map_err(|source| BenchError::File { action: "appending to", path: path.to_path_buf(), source })
}

/// Seconds with sensible precision.
pub fn secs(value: f64) -> String {
    if value < 10.0 { format!("{value:.2} s") } else { format!("{value:.1} s") }
}

/// KiB as MiB.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_line_up() {
        let rows = vec![Row::new("cold aws N=100", "wall", "1.20 s", "ESO: 600 in 180 s"), Row::new("p", "f", "v", "")];
        let table = markdown_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width), "{table}");
        assert!(lines[1].starts_with("|---"));
        assert!(lines[2].contains("| cold aws N=100 | wall"), "{table}");
    }

    #[test]
    fn appends_sections_with_one_header() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("results.md");
        let machine = Machine { cores: "2".into(), cpu: "test cpu".into(), memory: "1 GiB".into() };
        let rows = [Row::new("s", "f", "1", "a")];
        append_results(&path, &machine, "first", &rows).unwrap_or_else(|e| panic!("{e}"));
        append_results(&path, &machine, "second", &rows).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text.matches("# Benchmark results").count(), 1);
        assert_eq!(text.matches("2 cores (nproc), test cpu").count(), 2);
        assert!(text.find("first").unwrap_or(usize::MAX) < text.find("second").unwrap_or(0));
    }

    #[test]
    fn detects_this_machine() {
        let machine = Machine::detect();
        assert!(machine.cores.parse::<u32>().is_ok_and(|n| n >= 1), "{machine:?}");
    }
}
