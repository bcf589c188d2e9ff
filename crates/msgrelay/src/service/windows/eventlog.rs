//! The Application event log, source `msgrelay`: service start and stop, fatal errors, and
//! the warnings the ops listener reports (certificate and CRL expiry). Registration uses .NET's
//! EventLogMessages.dll as the message file (every event id renders as its text), which Windows
//! Server ships; without it Event Viewer still shows the text, under a "description not found" note.

use std::io;
use std::ptr::{null, null_mut};

use windows_sys::Win32::System::EventLog::{
    DeregisterEventSource, RegisterEventSourceW, ReportEventW, EVENTLOG_ERROR_TYPE,
    EVENTLOG_INFORMATION_TYPE, EVENTLOG_WARNING_TYPE,
};
use windows_sys::Win32::System::Registry::{
    RegCloseKey, RegCreateKeyExW, RegSetValueExW, HKEY, HKEY_LOCAL_MACHINE, KEY_SET_VALUE,
    REG_DWORD, REG_EXPAND_SZ, REG_OPTION_NON_VOLATILE,
};

/// The event source name.
pub const SOURCE: &str = "msgrelay";
const MESSAGE_FILE: &str =
    r"%SystemRoot%\Microsoft.NET\Framework64\v4.0.30319\EventLogMessages.dll";

#[derive(Clone, Copy, Debug)]
pub enum Level {
    Info,
    Warning,
    Error,
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

/// Registers the source under HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application.
pub fn register_source() -> io::Result<()> {
    let key_path = wide(&format!(
        r"SYSTEM\CurrentControlSet\Services\EventLog\Application\{SOURCE}"
    ));
    let mut key: HKEY = null_mut();
    // SAFETY: valid null-terminated strings and out-pointer; the key is closed below.
    unsafe {
        let rc = RegCreateKeyExW(
            HKEY_LOCAL_MACHINE,
            key_path.as_ptr(),
            0,
            null(),
            REG_OPTION_NON_VOLATILE,
            KEY_SET_VALUE,
            null(),
            &mut key,
            null_mut(),
        );
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc as i32));
        }
        let file = wide(MESSAGE_FILE);
        let types: u32 = 7; // error, warning, information
        let name = wide("EventMessageFile");
        let mut rc = RegSetValueExW(
            key,
            name.as_ptr(),
            0,
            REG_EXPAND_SZ,
            file.as_ptr() as *const u8,
            (file.len() * 2) as u32,
        );
        if rc == 0 {
            let name = wide("TypesSupported");
            rc = RegSetValueExW(
                key,
                name.as_ptr(),
                0,
                REG_DWORD,
                &types as *const u32 as *const u8,
                4,
            );
        }
        RegCloseKey(key);
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc as i32));
        }
    }
    Ok(())
}

/// Writes one event; failures are ignored (the file log has the same line).
pub fn report(level: Level, text: &str) {
    let (kind, id) = match level {
        Level::Info => (EVENTLOG_INFORMATION_TYPE, 1000),
        Level::Warning => (EVENTLOG_WARNING_TYPE, 2000),
        Level::Error => (EVENTLOG_ERROR_TYPE, 3000),
    };
    let source = wide(SOURCE);
    let text = wide(text);
    let strings = [text.as_ptr()];
    // SAFETY: valid null-terminated strings; the handle is deregistered below.
    unsafe {
        let h = RegisterEventSourceW(null(), source.as_ptr());
        if h.is_null() {
            return;
        }
        ReportEventW(h, kind, 0, id, null_mut(), 1, 0, strings.as_ptr(), null());
        DeregisterEventSource(h);
    }
}
