package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// manCommand prints the man page, generated from the commands and their
// options, for packaging (make package).
func manCommand() *cli.Command {
	return &cli.Command{
		Name: "man", Usage: "print the man page (roff), generated from the commands and their options", Hidden: true,
		Action: func(c *cli.Context) error {
			page, err := c.App.ToManWithSection(1)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(c.App.Writer, page)
			return err
		},
	}
}

// completionCommand prints a shell completion script. The scripts ask
// pgward itself (--generate-bash-completion), so they follow the commands.
func completionCommand() *cli.Command {
	return &cli.Command{
		Name: "completion", Usage: "print the completion script for `SHELL` (bash or zsh)", ArgsUsage: "bash|zsh",
		Description: `bash: pgward completion bash > /usr/share/bash-completion/completions/pgward
zsh:  pgward completion zsh > "${fpath[1]}/_pgward"
(the Debian package installs both)`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("completion takes one shell, bash or zsh; got %d arguments", c.NArg())
			}
			switch shell := c.Args().First(); shell {
			case "bash":
				_, err := fmt.Fprint(c.App.Writer, bashCompletion)
				return err
			case "zsh":
				_, err := fmt.Fprint(c.App.Writer, zshCompletion)
				return err
			default:
				return fmt.Errorf("completion: unknown shell %s: want bash or zsh", shortQuote(strings.TrimSpace(shell)))
			}
		},
	}
}

const bashCompletion = `# bash completion for pgward: pgward completion bash
_pgward() {
  local cur words
  COMPREPLY=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  local opts
  if [[ "$cur" == -* ]]; then
    opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _pgward pgward
`

const zshCompletion = `#compdef pgward
# zsh completion for pgward: pgward completion zsh
_pgward() {
  local -a opts
  local cur=${words[-1]}
  if [[ "$cur" == -* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} $cur --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _pgward pgward
`
