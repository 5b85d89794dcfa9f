// stowage completion bash|zsh: a completion script made from the command list, so
// every command, subcommand and option completes, and none is left out as they grow.
import { type Command, GENERAL_OPTIONS, groupOf, oneOperand, usageError } from './command.js';

/** Per first word: its subcommands (for a group) or its options. */
function table(commands: readonly Command[]) {
  const words = [...new Set(commands.map((c) => c.name.split(' ')[0] as string))];
  const subcommands = new Map<string, string[]>();
  const options = new Map<string, string[]>();
  const general = Object.keys(GENERAL_OPTIONS).map((o) => `--${o}`);
  for (const command of commands) {
    const group = groupOf(command.name);
    if (group)
      subcommands.set(group, [...(subcommands.get(group) ?? []), command.name.slice(group.length + 1)]);
    options.set(command.name, [...Object.keys(command.options).map((o) => `--${o}`), ...general]);
  }
  return { words, subcommands, options, general };
}

function bash(commands: readonly Command[]): string {
  const { words, subcommands, options, general } = table(commands);
  const cases = [...options].map(([name, opts]) => `    "${name}") opts="${opts.join(' ')}" ;;`).join('\n');
  const groups = [...subcommands].map(([g, subs]) => `    ${g}) subs="${subs.join(' ')}" ;;`).join('\n');
  return `# bash completion for stowage (stowage completion bash > /etc/bash_completion.d/stowage)
_stowage() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" first="\${COMP_WORDS[1]}" second="\${COMP_WORDS[2]}" opts="" subs=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${words.join(' ')} ${general.join(' ')}" -- "$cur")); return
  fi
  case "$first" in
${groups}
  esac
  if [ -n "$subs" ] && [ "$COMP_CWORD" -eq 2 ]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur")); return
  fi
  local name="$first"
  [ -n "$subs" ] && name="$first $second"
  case "$name" in
${cases}
  esac
  if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -F _stowage stowage
`;
}

function zsh(commands: readonly Command[]): string {
  const { words, subcommands, options } = table(commands);
  const summary = (word: string) =>
    commands.find((c) => c.name === word)?.summary ??
    `${word} commands (${subcommands.get(word)?.join(', ')})`;
  const quote = (text: string) => text.replace(/'/g, "'\\''").replace(/:/g, '\\:');
  const top = words.map((w) => `'${w}:${quote(summary(w))}'`).join(' ');
  const groups = [...subcommands]
    .map(
      ([g, subs]) =>
        `    ${g}) (( CURRENT == 3 )) && { _describe 'subcommand' '(${subs
          .map((s) => `${s}\\:${quote(commands.find((c) => c.name === `${g} ${s}`)?.summary ?? '')}`)
          .join(' ')})'; return } ;;`,
    )
    .join('\n');
  const cases = [...options].map(([name, opts]) => `    "${name}") opts=(${opts.join(' ')}) ;;`).join('\n');
  return `#compdef stowage
# zsh completion for stowage (stowage completion zsh > "\${fpath[1]}/_stowage")
_stowage() {
  local -a commands opts
  commands=(${top})
  if (( CURRENT == 2 )); then _describe 'command' commands; return; fi
  case "\${words[2]}" in
${groups}
  esac
  local name="\${words[2]}"
  case "\${words[2]}" in ${[...subcommands.keys()].join('|')}) name="\${words[2]} \${words[3]}" ;; esac
  case "$name" in
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
