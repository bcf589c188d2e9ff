//! Progress bars of long operator commands (backup, restore, key generation). They go to stderr
//! and only when stderr is a terminal: scripts, pipes, service logs and tests see none of it.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps labelled `what`; hidden unless stderr is a terminal.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:24} [{elapsed_precise}] {bar:30} {pos}/{len}")
            .expect("valid template"),
    );
    bar.set_message(what.to_owned());
    bar
}
