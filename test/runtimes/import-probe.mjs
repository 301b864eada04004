// Prints whether importing the package by name throws in this runtime and its permissions.
try {
  await import('session-flock');
  console.log('import ok');
} catch (error) {
  console.log(`import threw ${error?.name}: ${String(error?.message).replace(/\s+/g, ' ')}`);
}
