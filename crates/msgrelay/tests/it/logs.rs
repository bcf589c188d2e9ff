//! Log retention: `log.keep_days` becomes tracing-appender's `max_log_files`, which deletes the
//! oldest `msgrelay.log.*` files at start-up and at each daily rotation, keeping `keep_days` files
//! (today's included). The appender orders files by creation time, so the test creates the old
//! files oldest first with strictly increasing creation times.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::support::{wait_for, TestRelay, DEADLINE};

/// Creates `path` with a creation time later than `after` (the file system clock is coarse).
fn create_after(path: &Path, after: Option<SystemTime>) -> Option<SystemTime> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        std::fs::write(path, b"{\"old\":true}\n").expect("write old log file");
        let created = std::fs::metadata(path).and_then(|m| m.created()).ok();
        match (created, after) {
            (Some(c), Some(a)) if c <= a => {
                assert!(Instant::now() < end, "creation times do not advance");
                std::fs::remove_file(path).expect("remove old log file");
            }
            _ => return created,
        }
    }
}

fn log_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read logs/")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn start_up_deletes_daily_log_files_beyond_keep_days() {
    let mut relay = TestRelay::init().await;
    let logs = relay.path("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut created = None;
    for day in 1..=6 {
        created = create_after(&logs.join(format!("msgrelay.log.2020-01-0{day}")), created);
    }
    std::fs::write(logs.join("notes.txt"), "not a log file").unwrap();

    relay.start_up(&[("MSGRELAY_LOG__KEEP_DAYS", "3")]).await;
    let today = wait_for("today's log file with the start line", DEADLINE, || {
        let logs = logs.clone();
        async move {
            log_files(&logs).into_iter().find(|n| {
                n.starts_with("msgrelay.log.")
                    && !n.starts_with("msgrelay.log.2020-")
                    && std::fs::read_to_string(logs.join(n)).is_ok_and(|t| t.contains("starting"))
            })
        }
    })
    .await;
    assert_eq!(
        log_files(&logs),
        [
            "msgrelay.log.2020-01-05".to_owned(),
            "msgrelay.log.2020-01-06".to_owned(),
            today,
            "notes.txt".to_owned(),
        ],
        "keep_days = 3: today's file and the two newest old ones; other files untouched"
    );
}
