//! Logs over time, in fio's log format (`msec, value, direction, bs,
//! offset` per line, no header: `write_bw_log` in KiB/s, `write_iops_log`,
//! `write_lat_log` mean latency in ns, plus `_lat_p99` beside it), and an
//! SVG chart of throughput and p99 latency over time.

use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;

use super::stats::{self, Dir, Stats, DIRS};

/// Write the logs a job asked for; `index` numbers the job like fio's
/// `PREFIX_bw.1.log`. Returns the files written.
pub(crate) fn write_job_logs(
    stats: &Stats,
    every: Duration,
    bw: Option<&str>,
    lat: Option<&str>,
    iops: Option<&str>,
    index: usize,
) -> Result<Vec<String>, String> {
    let secs = every.as_secs_f64();
    let mut written = Vec::new();
    let mut emit = |prefix: &str, kind: &str, value: &dyn Fn(&stats::Interval) -> f64| -> Result<(), String> {
        let path = format!("{prefix}_{kind}.{index}.log");
        let mut out = String::new();
        for dir in DIRS {
            if stats.dirs[dir as usize].ops == 0 {
                continue;
            }
            for i in stats::series(&stats.samples, dir, every, stats.runtime) {
                out.push_str(&format!("{}, {:.0}, {}, 0, 0\n", i.end_ms, value(&i), dir as u8));
            }
        }
        std::fs::write(&path, out).map_err(|e| format!("writing {path}: {e}"))?;
        written.push(path);
        Ok(())
    };
    if let Some(p) = bw {
        emit(p, "bw", &|i| i.bytes as f64 / 1024.0 / secs)?;
    }
    if let Some(p) = iops {
        emit(p, "iops", &|i| i.ops as f64 / secs)?;
    }
    if let Some(p) = lat {
        emit(p, "lat", &|i| i.mean_lat_ns as f64)?;
        emit(p, "lat_p99", &|i| i.p99_lat_ns as f64)?;
    }
    Ok(written)
}

const COLORS: [RGBColor; 4] =
    [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(148, 103, 189)];

/// Throughput (MiB/s, LIST in operations/s) and p99 latency (ms) per
/// direction over the run, one point per `every`.
pub(crate) fn chart(total: &Stats, every: Duration, path: &Path, title: &str) -> Result<(), String> {
    let secs = every.as_secs_f64();
    let dirs: Vec<Dir> = DIRS.into_iter().filter(|d| total.dirs[*d as usize].ops > 0).collect();
    let series: Vec<(Dir, Vec<stats::Interval>)> =
        dirs.iter().map(|&d| (d, stats::series(&total.samples, d, every, total.runtime))).collect();
    let rate = |d: Dir, i: &stats::Interval| {
        if d == Dir::List {
            i.ops as f64 / secs
        } else {
            i.bytes as f64 / 1_048_576.0 / secs
        }
    };
    let t_max = total.runtime.as_secs_f64().max(secs);
    let y1 = series.iter().flat_map(|(d, s)| s.iter().map(|i| rate(*d, i))).fold(0.0, f64::max).max(1.0) * 1.1;
    let y2 =
        series.iter().flat_map(|(_, s)| s.iter().map(|i| i.p99_lat_ns as f64 / 1e6)).fold(0.0, f64::max).max(1.0) * 1.1;
    let fail = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (top, bottom) = root.split_vertically(350);
    let mut c1 = ChartBuilder::on(&top)
        .caption(format!("{title}: throughput"), ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..y1)
        .map_err(|e| fail(&e))?;
    c1.configure_mesh().x_desc("seconds").y_desc("MiB/s (list: ops/s)").draw().map_err(|e| fail(&e))?;
    let mut c2 = ChartBuilder::on(&bottom)
        .caption(format!("{title}: p99 latency"), ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..y2)
        .map_err(|e| fail(&e))?;
    c2.configure_mesh().x_desc("seconds").y_desc("p99 ms").draw().map_err(|e| fail(&e))?;
    for (d, s) in &series {
        let color = COLORS[*d as usize];
        let pts: Vec<(f64, f64)> = s.iter().map(|i| (i.end_ms as f64 / 1e3, rate(*d, i))).collect();
        c1.draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(d.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        let pts: Vec<(f64, f64)> =
            s.iter().filter(|i| i.ops > 0).map(|i| (i.end_ms as f64 / 1e3, i.p99_lat_ns as f64 / 1e6)).collect();
        c2.draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(d.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    c1.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(|e| fail(&e))?;
    c2.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_follow_fios_format_and_the_chart_is_svg() {
        let dir = std::env::temp_dir().join(format!("tb-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("ok");
        let mut s = Stats::default();
        for i in 0..200u64 {
            s.record(Dir::Write, Duration::from_millis(i * 10), Duration::from_millis(1 + i % 3), 65_536);
        }
        s.runtime = Duration::from_secs(2);
        let prefix = dir.join("j").to_string_lossy().into_owned();
        let files =
            write_job_logs(&s, Duration::from_secs(1), Some(&prefix), Some(&prefix), Some(&prefix), 1).expect("ok");
        assert_eq!(files.len(), 4);
        let bw = std::fs::read_to_string(format!("{prefix}_bw.1.log")).expect("ok");
        // 100 writes of 64 KiB per second: 6,400 KiB/s, direction 1.
        assert_eq!(bw, "1000, 6400, 1, 0, 0\n2000, 6400, 1, 0, 0\n");
        let iops = std::fs::read_to_string(format!("{prefix}_iops.1.log")).expect("ok");
        assert_eq!(iops.lines().next(), Some("1000, 100, 1, 0, 0"));
        let p99 = std::fs::read_to_string(format!("{prefix}_lat_p99.1.log")).expect("ok");
        assert_eq!(p99.lines().next(), Some("1000, 3000000, 1, 0, 0"));
        let svg = dir.join("chart.svg");
        chart(&s, Duration::from_millis(500), &svg, "test").expect("ok");
        let text = std::fs::read_to_string(&svg).expect("ok");
        assert!(text.starts_with("<svg") && text.contains("p99 latency") && text.contains("<polyline"), "{text:.300}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
