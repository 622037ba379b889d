from hwm_env.cli import build_parser, main


def test_help_lists_command_groups(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for group in ("data", "train", "eval", "model"):
        assert group in out


def test_parser_builds():
    assert build_parser().prog == "hwm"
