// Test helper: Debian's chromium driven by playwright-core (no browser download), with the flags
// that work in a container; playwright gives every launch a fresh temporary profile.
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = process.env.SDLORA_CHROMIUM ?? '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
