"""The keeper's and the supervisor's command line (driver/cluster/job_command_line.py)."""
import pytest

from sluicegate.driver.cluster.job_command_line import parse_job_command

OPTIONS = {"--segments": (int, 4), "--stop-grace-s": (float, 10.0)}


def test_options_then_the_command_after_the_separator():
    args, command = parse_job_command("k", "d", OPTIONS, [
        "--job-dir", "/j", "--segments", "2", "--", "python", "-u", "job.py", "--segments", "9"])
    assert (args.job_dir, args.segments, args.stop_grace_s) == ("/j", 2, 10.0)
    assert command == ["python", "-u", "job.py", "--segments", "9"]


def test_the_separator_may_be_left_out():
    _, command = parse_job_command("k", "d", {}, ["--job-dir", "/j", "python", "job.py"])
    assert command == ["python", "job.py"]


@pytest.mark.parametrize("argv", [["--job-dir", "/j"], ["--job-dir", "/j", "--"], ["--", "x"]])
def test_no_command_or_no_job_dir_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_job_command("k", "d", OPTIONS, argv)
    assert exit_.value.code == 2
