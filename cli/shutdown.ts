/** Resolves after SIGINT or SIGTERM has run `stop` (the long-running commands wait on this). */
export function onShutdown(stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const handler = () => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
      stop().finally(resolve);
    };
    process.on("SIGINT", handler);
    process.on("SIGTERM", handler);
  });
}
