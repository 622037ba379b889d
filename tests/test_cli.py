"""The `hwm` command line: version, a help that lists every command, help text for every option."""
import argparse
import subprocess
import sys

import hwm_env
from hwm_env.cli import build_parser, main


def commands(parser: argparse.ArgumentParser, prefix=("hwm",)):
    """(command words, parser) for every parser in the tree."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*prefix, name))


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    leaves = [words for words, parser in commands(build_parser())
              if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)]
    assert len(leaves) >= 14
    for words in leaves:
        assert " ".join(words) in out


def test_every_option_and_command_has_help():
    for words, parser in commands(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(choice.help for choice in action._choices_actions), words
            else:
                assert action.help, f"{' '.join(words)} {action.option_strings or action.dest} has no help text"


def test_version_is_the_package_version():
    result = subprocess.run([sys.executable, "-m", "hwm_env.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"hwm {hwm_env.__version__}"
    from importlib.metadata import version

    assert version("humanoid-world-models") == hwm_env.__version__
