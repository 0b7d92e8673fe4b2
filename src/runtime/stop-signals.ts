/**
 * SIGTERM and SIGINT while the gateway is still starting. Without a listener node dies of the signal at once: no
 * drain, no "certbound stopped" line, and a process manager that stops a service right after starting it (or
 * Ctrl-C during a slow start) gets a killed process instead of a clean stop. The signal is remembered instead and
 * acted on as soon as the stop routine exists.
 */
export interface HeldStopSignals {
  /** From now on a signal calls `stop`; one that came while starting calls it at once. */
  release (stop: (signal: NodeJS.Signals) => void): void
}

const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const

export function holdStopSignals (): HeldStopSignals {
  let early: NodeJS.Signals | undefined
  let stopper: ((signal: NodeJS.Signals) => void) | undefined
  // one listener for the life of the process: removing a signal's last listener closes its handle, and a signal
  // already caught but not yet dispatched to JavaScript is lost with it
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopper !== undefined) stopper(signal)
    else early ??= signal
  }
  for (const s of STOP_SIGNALS) process.on(s, onSignal)
  return {
    release (stop) {
      stopper = stop
      if (early !== undefined) stop(early)
    },
  }
}
