/* The shape of the addon's JavaScript interface: its functions, their arguments and
 * constants. Bumped whenever they change; the build hands it to src/file/binding.ts
 * (scripts/build-ts.mjs), which refuses an addon of another version. The one place it
 * is written. */
#define SF_INTERFACE_VERSION 10
