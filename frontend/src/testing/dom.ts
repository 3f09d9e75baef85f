/** Small DOM helpers for component tests: act like a user, read what a user reads. */

export function query<T extends Element = HTMLElement>(root: ParentNode, selector: string): T {
  const element = root.querySelector<T>(selector);
  if (!element) {
    throw new Error(`nothing matches ${selector}`);
  }
  return element;
}

export function queryAll<T extends Element = HTMLElement>(root: ParentNode, selector: string): T[] {
  return Array.from(root.querySelectorAll<T>(selector));
}

export function text(root: ParentNode, selector: string): string {
  return root.querySelector(selector)?.textContent?.replace(/\s+/g, ' ').trim() ?? '';
}

/** Type into an input or textarea, or choose in a select. */
export function setValue(
  element: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement,
  value: string,
): void {
  element.value = value;
  element.dispatchEvent(new Event(element instanceof HTMLSelectElement ? 'change' : 'input'));
  element.dispatchEvent(new Event('blur'));
}

export function buttonByText(root: ParentNode, label: string): HTMLButtonElement {
  const button = queryAll<HTMLButtonElement>(root, 'button').find(
    (b) => b.textContent?.trim() === label,
  );
  if (!button) {
    throw new Error(`no button labelled ${label}`);
  }
  return button;
}
