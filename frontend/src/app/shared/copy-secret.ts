/**
 * Copy a secret shown once (an API token, a webhook secret) to the clipboard; when the
 * browser refuses, select it in its field so Ctrl+C works. Returns what to tell the user.
 */
export async function copySecret(
  secret: string,
  input: HTMLInputElement,
  what: string,
): Promise<string> {
  try {
    await navigator.clipboard.writeText(secret);
    return 'Copied to the clipboard.';
  } catch {
    input.focus();
    input.select();
    return `Could not copy: the ${what} is selected, press Ctrl+C (⌘C) to copy it.`;
  }
}
