{
  "targets": [
    {
      "target_name": "session_flock",
      "sources": ["native/binding.c", "native/handles.c", "native/waits.c", "native/thread_pool.c", "native/record.c"],
      "conditions": [
        ["OS=='win'", {
          "sources": ["native/flock_win32.c"],
          "msvs_settings": {"VCCLCompilerTool": {"WarningLevel": 4, "WarnAsError": "true"}}
        }, {
          "sources": ["native/flock_posix.c"],
          "libraries": ["-ldl"],
          "cflags": ["-std=c11", "-Wall", "-Wextra", "-Werror"],
          "xcode_settings": {"OTHER_CFLAGS": ["-std=c11", "-Wall", "-Wextra", "-Werror"]}
        }]
      ]
    }
  ]
}
