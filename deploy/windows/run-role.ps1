<#
.SYNOPSIS
    Runs one msgrelay role process in the foreground and returns its exit code.

.DESCRIPTION
    Used two ways:
      * by the scheduled tasks that install-services.ps1 registers (one task per process);
      * by start-proxy.ps1 / start-worker.ps1 / start-server.ps1 for a test run in a console.

    It sets the per-process settings that must differ between processes on one host (the
    loopback ops port, through MSGRELAY_OPS__LISTEN), starts msgrelay.exe and waits for it.
    msgrelay.exe is put in a Windows job object that kills it when this script's process
    ends: Stop-ScheduledTask (or "End" in Task Scheduler) terminates only the process the
    task started - this PowerShell - and without the job object msgrelay.exe would keep
    running orphaned.

    Ctrl-C in a console reaches msgrelay.exe directly (same console) and stops it cleanly.

.EXAMPLE
    .\run-role.ps1 -Role worker -Instance 2 -Config C:\msgrelay\msgrelay.toml
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidateSet('proxy', 'worker', 'server')]
    [string]$Role,

    # Worker instance number (1-9); selects the ops port 9110+N. Ignored for proxy/server.
    [ValidateRange(1, 9)]
    [int]$Instance = 1,

    [string]$InstallDir = 'C:\msgrelay',

    [string]$Config = 'C:\msgrelay\msgrelay.toml',

    # Loopback address of this process's /health /ready /metrics listener. Default:
    # proxy 127.0.0.1:9100, server 127.0.0.1:9101, worker N 127.0.0.1:911N.
    [string]$OpsListen = '',

    # When set, msgrelay.exe's standard error (start-up errors before the log file is open,
    # e.g. a bad configuration key) is written to this file; it is replaced at every start.
    [string]$StderrLog = ''
)

Set-StrictMode -Version 3
$ErrorActionPreference = 'Stop'

$exe = Join-Path $InstallDir 'msgrelay.exe'
if (-not (Test-Path -LiteralPath $exe -PathType Leaf)) {
    Write-Error "msgrelay.exe not found at '$exe'. Copy target\release\msgrelay.exe there or pass -InstallDir."
    exit 64
}
if (-not (Test-Path -LiteralPath $Config -PathType Leaf)) {
    Write-Error "Configuration '$Config' not found. Copy deploy\windows\msgrelay.toml.example there and edit it, or pass -Config."
    exit 64
}

if ($OpsListen -eq '') {
    switch ($Role) {
        'proxy'  { $OpsListen = '127.0.0.1:9100' }
        'server' { $OpsListen = '127.0.0.1:9101' }
        'worker' { $OpsListen = "127.0.0.1:911$Instance" }
    }
}
# Inherited by msgrelay.exe only (this process's environment, not the machine's).
$env:MSGRELAY_OPS__LISTEN = $OpsListen

# A job object that kills its processes when its last handle (held by this script) closes.
$jobCode = @'
using System;
using System.Runtime.InteropServices;

public static class MsgrelayJob
{
    [StructLayout(LayoutKind.Sequential)]
    struct BasicLimits
    {
        public long PerProcessUserTimeLimit;
        public long PerJobUserTimeLimit;
        public uint LimitFlags;
        public UIntPtr MinimumWorkingSetSize;
        public UIntPtr MaximumWorkingSetSize;
        public uint ActiveProcessLimit;
        public UIntPtr Affinity;
        public uint PriorityClass;
        public uint SchedulingClass;
    }

    [StructLayout(LayoutKind.Sequential)]
    struct IoCounters
    {
        public ulong ReadOperationCount, WriteOperationCount, OtherOperationCount;
        public ulong ReadTransferCount, WriteTransferCount, OtherTransferCount;
    }

    [StructLayout(LayoutKind.Sequential)]
    struct ExtendedLimits
    {
        public BasicLimits Basic;
        public IoCounters Io;
        public UIntPtr ProcessMemoryLimit;
        public UIntPtr JobMemoryLimit;
        public UIntPtr PeakProcessMemoryUsed;
        public UIntPtr PeakJobMemoryUsed;
    }

    const int JobObjectExtendedLimitInformation = 9;
    const uint JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000;

    [DllImport("kernel32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
    static extern IntPtr CreateJobObject(IntPtr attributes, string name);

    [DllImport("kernel32.dll", SetLastError = true)]
    static extern bool SetInformationJobObject(IntPtr job, int infoClass, IntPtr info, uint length);

    [DllImport("kernel32.dll", SetLastError = true)]
    static extern bool AssignProcessToJobObject(IntPtr job, IntPtr process);

    static IntPtr job = IntPtr.Zero;

    public static void Attach(IntPtr process)
    {
        if (job == IntPtr.Zero)
        {
            IntPtr created = CreateJobObject(IntPtr.Zero, null);
            if (created == IntPtr.Zero) throw new System.ComponentModel.Win32Exception();
            ExtendedLimits limits = new ExtendedLimits();
            limits.Basic.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
            int size = Marshal.SizeOf(typeof(ExtendedLimits));
            IntPtr buffer = Marshal.AllocHGlobal(size);
            try
            {
                Marshal.StructureToPtr(limits, buffer, false);
                if (!SetInformationJobObject(created, JobObjectExtendedLimitInformation, buffer, (uint)size))
                    throw new System.ComponentModel.Win32Exception();
            }
            finally
            {
                Marshal.FreeHGlobal(buffer);
            }
            job = created;
        }
        if (!AssignProcessToJobObject(job, process)) throw new System.ComponentModel.Win32Exception();
    }
}
'@

$startArgs = @{
    FilePath         = $exe
    ArgumentList     = @($Role, '--config', "`"$Config`"")
    WorkingDirectory = $InstallDir
    NoNewWindow      = $true
    PassThru         = $true
}
if ($StderrLog -ne '') {
    $logDir = Split-Path -Parent $StderrLog
    if ($logDir -and -not (Test-Path -LiteralPath $logDir)) { New-Item -ItemType Directory -Path $logDir -Force | Out-Null }
    $startArgs['RedirectStandardError'] = $StderrLog
}

$proc = Start-Process @startArgs
# Reading Handle once makes .NET keep it, so ExitCode is still available after the exit.
$handle = $proc.Handle

try {
    if (-not ('MsgrelayJob' -as [type])) { Add-Type -TypeDefinition $jobCode -Language CSharp }
    [MsgrelayJob]::Attach($handle)
} catch {
    # Still run; only stopping the task may then leave msgrelay.exe behind (see stop in control-tasks.ps1).
    Write-Warning "Could not attach msgrelay.exe to a job object: $($_.Exception.Message)"
}

# Short waits keep this script responsive to Ctrl-C.
while (-not $proc.WaitForExit(1000)) { }
$code = $proc.ExitCode
if ($null -eq $code) { $code = 1 }
exit $code
