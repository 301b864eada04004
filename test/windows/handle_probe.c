/* Prints how many of this process's handles name a file whose path ends with
 * argv[1]: a child uses it to show it inherited no lock handle. */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <stdio.h>
#include <wchar.h>

int wmain(int argc, wchar_t **argv) {
  if (argc != 2) return 2;
  size_t want = wcslen(argv[1]);
  int found = 0;
  for (ULONG_PTR v = 4; v < 0x10000; v += 4) {
    HANDLE h = (HANDLE)v;
    DWORD flags;
    if (!GetHandleInformation(h, &flags)) continue;
    if (GetFileType(h) != FILE_TYPE_DISK) continue;
    wchar_t path[2048];
    DWORD n = GetFinalPathNameByHandleW(h, path, 2048, 0);
    if (n == 0 || n >= 2048 || n < want) continue;
    if (_wcsicmp(path + n - want, argv[1]) == 0) found++;
  }
  printf("%d\n", found);
  return 0;
}
