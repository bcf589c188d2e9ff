//! Windows DACLs for what Unix makes 0600/0700: an explicit, protected DACL (nothing inherited
//! from the parent) that allows the process's own account (the service's virtual account when
//! a service writes the file), SYSTEM and Administrators, and nobody else. Directories pass the
//! same entries on to what is created inside them, so a file is restricted from the moment it
//! exists, before `restrict_to_owner` re-applies the list to it explicitly.

use std::ffi::c_void;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use std::ptr::{null, null_mut};

use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, ERROR_SUCCESS, GENERIC_ALL, HANDLE};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, GetNamedSecurityInfoW, SetEntriesInAclW, SetNamedSecurityInfoW,
    EXPLICIT_ACCESS_W, GRANT_ACCESS, NO_MULTIPLE_TRUSTEE, SET_ACCESS, SE_FILE_OBJECT,
    TRUSTEE_IS_SID, TRUSTEE_IS_UNKNOWN, TRUSTEE_W,
};
use windows_sys::Win32::Security::{
    AclSizeInformation, CreateWellKnownSid, EqualSid, GetAce, GetAclInformation,
    GetSecurityDescriptorControl, GetTokenInformation, TokenUser, WinBuiltinAdministratorsSid,
    WinLocalSystemSid, ACCESS_ALLOWED_ACE, ACE_HEADER, ACL, ACL_SIZE_INFORMATION,
    DACL_SECURITY_INFORMATION, NO_INHERITANCE, PROTECTED_DACL_SECURITY_INFORMATION, PSID,
    SECURITY_MAX_SID_SIZE, SE_DACL_PROTECTED, SUB_CONTAINERS_AND_OBJECTS_INHERIT, TOKEN_QUERY,
    TOKEN_USER, UNPROTECTED_DACL_SECURITY_INFORMATION,
};
use windows_sys::Win32::System::SystemServices::ACCESS_ALLOWED_ACE_TYPE;
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// A SID in an owned buffer (PSID points into it).
struct Sid(Vec<u8>);

impl Sid {
    fn as_psid(&self) -> PSID {
        self.0.as_ptr() as PSID
    }

    fn well_known(kind: i32) -> io::Result<Sid> {
        let mut buf = vec![0u8; SECURITY_MAX_SID_SIZE as usize];
        let mut len = buf.len() as u32;
        // SAFETY: buf holds `len` bytes; a null domain SID is allowed for these well-known SIDs.
        if unsafe { CreateWellKnownSid(kind, null_mut(), buf.as_mut_ptr() as PSID, &mut len) } == 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(Sid(buf))
    }

    /// The account this process runs as (a service's virtual account under the service manager).
    fn current_user() -> io::Result<Sid> {
        let mut token: HANDLE = null_mut();
        // SAFETY: plain Win32 calls on our own process token; the buffer is sized by the first call.
        unsafe {
            if OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) == 0 {
                return Err(io::Error::last_os_error());
            }
            let mut len = 0u32;
            GetTokenInformation(token, TokenUser, null_mut(), 0, &mut len);
            let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
            let ok = GetTokenInformation(
                token,
                TokenUser,
                buf.as_mut_ptr() as *mut c_void,
                len,
                &mut len,
            );
            let err = io::Error::last_os_error();
            CloseHandle(token);
            if ok == 0 {
                return Err(err);
            }
            let user = &*(buf.as_ptr() as *const TOKEN_USER);
            Ok(Sid(copy_sid(user.User.Sid)))
        }
    }
}

/// Copies the SID at `sid` (revision, count, authority, sub-authorities) into a Vec.
unsafe fn copy_sid(sid: PSID) -> Vec<u8> {
    let p = sid as *const u8;
    let sub_authorities = *p.add(1) as usize;
    std::slice::from_raw_parts(p, 8 + 4 * sub_authorities).to_vec()
}

fn sid_string(sid: PSID) -> String {
    let mut out: *mut u16 = null_mut();
    // SAFETY: `sid` is valid; the returned string is freed with LocalFree.
    unsafe {
        if ConvertSidToStringSidW(sid, &mut out) == 0 {
            return "an unknown account".into();
        }
        let len = (0..).take_while(|&i| *out.add(i) != 0).count();
        let s = String::from_utf16_lossy(std::slice::from_raw_parts(out, len));
        LocalFree(out as *mut c_void);
        s
    }
}

fn wide(path: &Path) -> Vec<u16> {
    path.as_os_str()
        .encode_wide()
        .chain(std::iter::once(0))
        .collect()
}

/// The accounts a restricted file allows.
fn allowed() -> io::Result<[Sid; 3]> {
    Ok([
        Sid::current_user()?,
        Sid::well_known(WinLocalSystemSid)?,
        Sid::well_known(WinBuiltinAdministratorsSid)?,
    ])
}

fn entry(sid: &Sid, inherit: u32, mode: i32) -> EXPLICIT_ACCESS_W {
    EXPLICIT_ACCESS_W {
        grfAccessPermissions: GENERIC_ALL,
        grfAccessMode: mode,
        grfInheritance: inherit,
        Trustee: TRUSTEE_W {
            pMultipleTrustee: null_mut(),
            MultipleTrusteeOperation: NO_MULTIPLE_TRUSTEE,
            TrusteeForm: TRUSTEE_IS_SID,
            TrusteeType: TRUSTEE_IS_UNKNOWN,
            ptstrName: sid.as_psid() as *mut u16,
        },
    }
}

/// Builds an ACL from `entries` on top of `old` (null: a new ACL) and sets it on `path`.
fn apply(
    path: &Path,
    entries: &[EXPLICIT_ACCESS_W],
    old: *const ACL,
    protect: bool,
) -> io::Result<()> {
    let mut acl: *mut ACL = null_mut();
    // SAFETY: `entries` point at SIDs that outlive this call; the new ACL is freed below.
    unsafe {
        let rc = SetEntriesInAclW(entries.len() as u32, entries.as_ptr(), old, &mut acl);
        if rc != ERROR_SUCCESS {
            return Err(io::Error::from_raw_os_error(rc as i32));
        }
        let flags = DACL_SECURITY_INFORMATION
            | if protect {
                PROTECTED_DACL_SECURITY_INFORMATION
            } else {
                UNPROTECTED_DACL_SECURITY_INFORMATION
            };
        let name = wide(path);
        let rc = SetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            flags,
            null_mut(),
            null_mut(),
            acl,
            null(),
        );
        LocalFree(acl as *mut c_void);
        if rc != ERROR_SUCCESS {
            return Err(io::Error::from_raw_os_error(rc as i32));
        }
    }
    Ok(())
}

/// Replaces the DACL of `path` with: this process's account, SYSTEM, Administrators (full
/// control), inheritance from the parent removed. Directories hand the entries down.
pub fn restrict_to_owner(path: &Path) -> io::Result<()> {
    let inherit = if path.is_dir() {
        SUB_CONTAINERS_AND_OBJECTS_INHERIT
    } else {
        NO_INHERITANCE
    };
    let sids = allowed()?;
    let entries: Vec<_> = sids.iter().map(|s| entry(s, inherit, SET_ACCESS)).collect();
    apply(path, &entries, null(), true)
}

/// Adds full control for the account `sid_bytes` to the existing DACL of `path`, keeping it
/// protected (a service's virtual account must read the keys `init` wrote as an administrator).
pub fn grant(path: &Path, account: &[u8]) -> io::Result<()> {
    let inherit = if path.is_dir() {
        SUB_CONTAINERS_AND_OBJECTS_INHERIT
    } else {
        NO_INHERITANCE
    };
    let sid = Sid(account.to_vec());
    let dacl = read_dacl(path)?;
    apply(
        path,
        &[entry(&sid, inherit, GRANT_ACCESS)],
        dacl.dacl,
        dacl.protected,
    )
}

struct Dacl {
    sd: *mut c_void,
    dacl: *mut ACL,
    /// Whether the DACL ignores the parent's inheritable entries.
    protected: bool,
}

impl Drop for Dacl {
    fn drop(&mut self) {
        // SAFETY: `sd` came from GetNamedSecurityInfoW and owns `dacl`.
        unsafe { LocalFree(self.sd) };
    }
}

fn read_dacl(path: &Path) -> io::Result<Dacl> {
    let name = wide(path);
    let mut dacl: *mut ACL = null_mut();
    let mut sd: *mut c_void = null_mut();
    // SAFETY: out-pointers are valid; `sd` is released by Dacl's Drop.
    unsafe {
        let rc = GetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            null_mut(),
            null_mut(),
            &mut dacl,
            null_mut(),
            &mut sd,
        );
        if rc != ERROR_SUCCESS {
            return Err(io::Error::from_raw_os_error(rc as i32));
        }
        let (mut control, mut revision) = (0u16, 0u32);
        GetSecurityDescriptorControl(sd, &mut control, &mut revision);
        Ok(Dacl {
            sd,
            dacl,
            protected: control & SE_DACL_PROTECTED != 0,
        })
    }
}

/// `None` when `path` allows only this account, SYSTEM, Administrators and service accounts
/// (`NT SERVICE\...`, SIDs S-1-5-80-...); otherwise which other accounts it allows.
pub fn broader_access(path: &Path) -> io::Result<Option<String>> {
    let dacl = read_dacl(path)?;
    if dacl.dacl.is_null() {
        return Ok(Some("has no DACL: everyone has full access".into()));
    }
    let sids = allowed()?;
    let mut others = Vec::new();
    // SAFETY: `dacl.dacl` is a valid ACL owned by `dacl.sd`; ACEs are read within AceCount.
    unsafe {
        let mut info = ACL_SIZE_INFORMATION {
            AceCount: 0,
            AclBytesInUse: 0,
            AclBytesFree: 0,
        };
        if GetAclInformation(
            dacl.dacl,
            &mut info as *mut _ as *mut c_void,
            std::mem::size_of_val(&info) as u32,
            AclSizeInformation,
        ) == 0
        {
            return Err(io::Error::last_os_error());
        }
        for i in 0..info.AceCount {
            let mut ace: *mut c_void = null_mut();
            if GetAce(dacl.dacl, i, &mut ace) == 0 {
                return Err(io::Error::last_os_error());
            }
            let header = &*(ace as *const ACE_HEADER);
            if u32::from(header.AceType) != ACCESS_ALLOWED_ACE_TYPE {
                continue; // deny entries only narrow access
            }
            let sid = &(*(ace as *const ACCESS_ALLOWED_ACE)).SidStart as *const u32 as PSID;
            if sids.iter().any(|s| EqualSid(s.as_psid(), sid) != 0) {
                continue;
            }
            let text = sid_string(sid);
            if !text.starts_with("S-1-5-80-") {
                others.push(text);
            }
        }
    }
    // Entries inherited from a restricted folder are no broader access; only other accounts are.
    Ok((!others.is_empty()).then(|| format!("also allows {}", others.join(", "))))
}
