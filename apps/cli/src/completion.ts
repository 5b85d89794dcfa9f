// stowage completion bash|zsh: a completion script made from the command list, so
// every command, subcommand and option completes, and none is left out as they grow.
import { type Command, GENERAL_OPTIONS, oneOperand, usageError } from './command.js';

/**
 * The command words as a tree: per group prefix (`""`, `stages`, `stages metadata`),
 * the words that may follow it; per command, its options.
 */
function table(commands: readonly Command[]) {
  const children = new Map<string, string[]>();
  const options = new Map<string, string[]>();
  const general = Object.keys(GENERAL_OPTIONS).map((o) => `--${o}`);
  for (const command of commands) {
    const words = command.name.split(' ');
    for (let k = 0; k < words.length; k++) {
      const prefix = words.slice(0, k).join(' ');
      const next = children.get(prefix) ?? [];
      if (!next.includes(words[k] as string)) next.push(words[k] as string);
      children.set(prefix, next);
    }
    options.set(command.name, [...Object.keys(command.options).map((o) => `--${o}`), ...general]);
  }
  const groups = [...children].filter(([prefix]) => prefix !== '');
  return { top: children.get('') ?? [], groups, options, general };
}

function bash(commands: readonly Command[]): string {
  const { top, groups, options, general } = table(commands);
  const cases = [...options].map(([name, opts]) => `    "${name}") opts="${opts.join(' ')}" ;;`).join('\n');
  const subs = groups.map(([g, words]) => `    "${g}") subs="${words.join(' ')}" ;;`).join('\n');
  const isGroup = groups.map(([g]) => `"${g}"`).join('|');
  return `# bash completion for stowage (stowage completion bash > /etc/bash_completion.d/stowage)
_stowage() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prefix="" next i=1 opts="" subs="${top.join(' ')} ${general.join(' ')}"
  # the words typed so far that name a group (stages, stages metadata) make the prefix
  while [ "$i" -lt "$COMP_CWORD" ]; do
    next="\${prefix:+$prefix }\${COMP_WORDS[i]}"
    case "$next" in ${isGroup}) prefix="$next"; i=$((i + 1)) ;; *) break ;; esac
  done
  if [ "$i" -eq "$COMP_CWORD" ]; then
    case "$prefix" in
${subs}
    esac
    COMPREPLY=($(compgen -W "$subs" -- "$cur")); return
  fi
  case "\${prefix:+$prefix }\${COMP_WORDS[i]}" in
${cases}
  esac
  if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -F _stowage stowage
`;
}

function zsh(commands: readonly Command[]): string {
  const { top, groups, options } = table(commands);
  const quote = (text: string) => text.replace(/'/g, "'\\''").replace(/:/g, '\\:');
  const summary = (name: string) =>
    commands.find((c) => c.name === name)?.summary ??
    `${name} commands (${groups.find(([g]) => g === name)?.[1].join(', ')})`;
  const described = (prefix: string, words: readonly string[]) =>
    words.map((w) => `'${w}:${quote(summary(prefix ? `${prefix} ${w}` : w))}'`).join(' ');
  const subs = groups.map(([g, words]) => `    "${g}") subs=(${described(g, words)}) ;;`).join('\n');
  const isGroup = groups.map(([g]) => `"${g}"`).join('|');
  const cases = [...options].map(([name, opts]) => `    "${name}") opts=(${opts.join(' ')}) ;;`).join('\n');
  return `#compdef stowage
# zsh completion for stowage (stowage completion zsh > "\${fpath[1]}/_stowage")
_stowage() {
  local -a subs opts
  local prefix="" next i=2
  subs=(${described('', top)})
  while (( i < CURRENT )); do
    next="\${prefix:+$prefix }\${words[i]}"
    case "$next" in ${isGroup}) prefix="$next"; (( i++ )) ;; *) break ;; esac
  done
  if (( i == CURRENT )); then
    case "$prefix" in
${subs}
    esac
    _describe 'command' subs; return
  fi
  case "\${prefix:+$prefix }\${words[i]}" in
${cases}
  esac
  if [[ "\${words[CURRENT]}" == -* ]]; then compadd -- $opts; else _files; fi
}
_stowage "$@"
`;
}

const USAGE = 'usage: stowage completion bash|zsh';

/** `stowage completion`, made over the list it is given (commands.ts gives it every command). */
export function completionCommand(all: () => readonly Command[]): Command {
  return {
    name: 'completion',
    synopsis: 'completion bash|zsh',
    summary: 'print a shell completion script',
    usage: USAGE,
    help: `${USAGE}

Prints a completion script for bash or zsh: commands, subcommands and every command's options.

examples:
  stowage completion bash > /etc/bash_completion.d/stowage
  stowage completion zsh > "\${fpath[1]}/_stowage"`,
    options: {},
    async run({ operands }) {
      const shell = oneOperand('completion', operands, 'a shell: bash or zsh');
      if (shell !== 'bash' && shell !== 'zsh') {
        throw usageError('completion', `completion knows bash and zsh, not ${JSON.stringify(shell)}`);
      }
      process.stdout.write(shell === 'bash' ? bash(all()) : zsh(all()));
      return 0;
    },
  };
}
