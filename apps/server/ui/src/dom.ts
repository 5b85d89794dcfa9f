// Building the DOM: every piece of text goes in as a text node, never as HTML.

export type Child = Node | string | number | null | undefined | false | readonly Child[];

/** Attributes (strings, or `true` for a bare attribute), `testid` for `data-testid`, and `on<event>` listeners. */
export type Props = Readonly<
  Record<string, string | number | boolean | undefined | ((event: Event) => void)>
>;

/** `h('a', { href: '#/' }, 'Repositories')`: an element with its attributes, listeners and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props?: Props | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (name === 'testid') element.dataset['testid'] = String(value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

/** Appends children (text escaped as text nodes; `null`, `undefined` and `false` skipped). */
export function append(parent: Node, children: readonly Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces every child of `parent`. */
export function replace(parent: Node, ...children: Child[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, children);
}
