//! A service's account and environment: giving its account access to the data directory the
//! administrator initialised (`init` restricts keys to its own account, SYSTEM and
//! Administrators, and a virtual account `NT SERVICE\msgrelay-proxy` is none of these), and the
//! per-service `Environment` value the Service Control Manager passes to the process.

use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use std::ptr::null;

use windows_sys::Win32::Security::{LookupAccountNameW, SID_NAME_USE};
use windows_sys::Win32::System::Registry::{
    RegCloseKey, RegOpenKeyExW, RegSetValueExW, HKEY, HKEY_LOCAL_MACHINE, KEY_SET_VALUE,
    REG_MULTI_SZ,
};

use msgrelay_files::windows_acl;

/// The SID of `account` (e.g. `NT SERVICE\msgrelay-proxy`), as bytes.
fn lookup(account: &str) -> io::Result<Vec<u8>> {
    let name: Vec<u16> = std::ffi::OsStr::new(account)
        .encode_wide()
        .chain(Some(0))
        .collect();
    let mut sid = vec![0u8; 68];
    let mut sid_len = sid.len() as u32;
    let mut domain = vec![0u16; 256];
    let mut domain_len = domain.len() as u32;
    let mut kind: SID_NAME_USE = 0;
    // SAFETY: every buffer is as long as the length passed with it.
    let ok = unsafe {
        LookupAccountNameW(
            null(),
            name.as_ptr(),
            sid.as_mut_ptr() as *mut _,
            &mut sid_len,
            domain.as_mut_ptr(),
            &mut domain_len,
            &mut kind,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    sid.truncate(sid_len as usize);
    Ok(sid)
}

/// Adds `account` to the DACL of the data directory and of everything under it; returns how
/// many entries were changed.
pub fn grant_data_dir(account: &str, dir: &Path) -> io::Result<usize> {
    let sid = lookup(account)?;
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if !path.exists() {
            continue;
        }
        windows_acl::grant(&path, &sid)?;
        count += 1;
        if path.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(count)
}

/// Writes `vars` (KEY=VALUE) as the service's `Environment` (REG_MULTI_SZ under its key).
pub fn set_environment(service: &str, vars: &[String]) -> io::Result<()> {
    let key_path: Vec<u16> = format!(r"SYSTEM\CurrentControlSet\Services\{service}")
        .encode_utf16()
        .chain(Some(0))
        .collect();
    let mut data: Vec<u16> = Vec::new();
    for v in vars {
        data.extend(v.encode_utf16());
        data.push(0);
    }
    data.push(0);
    let name: Vec<u16> = "Environment".encode_utf16().chain(Some(0)).collect();
    let mut key: HKEY = std::ptr::null_mut();
    // SAFETY: null-terminated strings, valid out-pointer; the key is closed below.
    unsafe {
        let rc = RegOpenKeyExW(
            HKEY_LOCAL_MACHINE,
            key_path.as_ptr(),
            0,
            KEY_SET_VALUE,
            &mut key,
        );
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc as i32));
        }
        let rc = RegSetValueExW(
            key,
            name.as_ptr(),
            0,
            REG_MULTI_SZ,
            data.as_ptr() as *const u8,
            (data.len() * 2) as u32,
        );
        RegCloseKey(key);
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc as i32));
        }
    }
    Ok(())
}
