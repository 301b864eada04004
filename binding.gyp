{
  "variables": {
    "sf_werror%": "<!(node -p \"process.env.SESSION_FLOCK_WERROR === '1' ? 1 : 0\")"
  },
  "targets": [
    {
      "target_name": "session_flock",
      "sources": ["native/binding.c", "native/handles.c", "native/waits.c", "native/thread_pool.c", "native/record.c"],
      "conditions": [
        ["OS=='win'", {
          "sources": ["native/flock_win32.c"],
          "msvs_settings": {"VCCLCompilerTool": {"WarningLevel": 4}}
        }, {
          "sources": ["native/flock_posix.c"],
          "libraries": ["-ldl"],
          "cflags": ["-std=c11", "-Wall", "-Wextra"],
          "xcode_settings": {"OTHER_CFLAGS": ["-std=c11", "-Wall", "-Wextra"]}
        }],
        ["sf_werror==1 and OS=='win'", {
          "msvs_settings": {"VCCLCompilerTool": {"WarnAsError": "true"}}
        }],
        ["sf_werror==1 and OS!='win'", {
          "cflags": ["-Werror"],
          "xcode_settings": {"OTHER_CFLAGS": ["-Werror"]}
        }]
      ]
    }
  ]
}
