/* TEST HARNESS ONLY, never shipped. Wine 8 has no bcryptprimitives.dll, whose ProcessPrng Rust's
 * standard library imports on Windows; this forwards it to RtlGenRandom (advapi32
 * SystemFunction036), which Wine implements. Real Windows (8.1 and later) ships the real DLL. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    return SystemFunction036(data, (ULONG)len);
}
