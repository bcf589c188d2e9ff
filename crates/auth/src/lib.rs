//! Portal login policy that needs no HTTP: the bounded, keyed login limiter (`limiter`), the
//! `next=` redirect check (`redirect`) and the username tag that failed-login logs carry instead
//! of the attempted text (`tag`). The portal's handlers call these; nothing here does I/O.

pub mod limiter;
pub mod redirect;
pub mod tag;

pub use limiter::{LoginLimiter, LoginLimits, Refused, Reservation};
pub use redirect::{local_path, safe_next};
pub use tag::username_tag;

/// Longest username the portal accepts (bytes); longer ones are refused before any other work.
pub const MAX_USERNAME_BYTES: usize = 64;
