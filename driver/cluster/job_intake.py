"""The cluster service's intake of jobs: ``submit`` stores and starts one,
``attach`` (and ``submit`` without ``--detach``) streams its output.

A submitted job gets a directory in the work dir holding its script, its
files, its copy of the secret and its output (``job_process``); its driver
runs as a process of its own, so a crashing job cannot take the service
down. A watcher (a submitter) gets the output it does not have yet, a
bounded amount per pass, then the job's end.
"""
from __future__ import annotations

import getpass
import logging
import os
import shutil
import time
from pathlib import Path

from sluicegate.common import constants
from sluicegate.common.protocol.cluster import (
    AttachJob, CommandResult, JobAccepted, JobEnded, JobLogsEnd, JobOutput, JobRejected,
    JobStatusPages, JobUnknown, SubmitJob)

from .job_keeper import SECRET_FILE
from .job_process import JobProcess, write_job_file
from .job_records import FAILED, RUNNING, JobRecord, Watcher

log = logging.getLogger("sluicegate.service")

OUTPUT_CHUNK_BYTES = 1 << 16
WATCHER_BYTES_PER_PASS = 1 << 20
OUTPUT_SEGMENTS = 4  # files each output stream of a job is kept in


class JobIntake:
    """The jobs part of ``ClusterService`` (it holds ``jobs``, ``work_dir``, ``transport``,
    ``host``, ``advertise_host``, ``master_url``, ``segment_bytes``, ``send``,
    ``_job_numbers``, ``_finish_job`` and ``_forget_old_jobs``)."""

    def _submit(self, identity: bytes, message: SubmitJob, now: float) -> None:
        if not message.payload or len(message.payload) != 1 + len(message.py_file_names):
            self.send(identity, JobRejected("the script and its files did not all arrive"))
            return
        job_id = self._new_job_id()
        job_dir = self.work_dir / "jobs" / job_id
        try:
            job_dir.mkdir(parents=True)
            script = job_dir / Path(message.script_name).name
            script.write_bytes(bytes(message.payload[0]))
            py_files = {}
            for name, data in zip(message.py_file_names, message.payload[1:]):
                py_files[Path(name).name] = bytes(data)
                (job_dir / Path(name).name).write_bytes(bytes(data))
            # The job's copy of the secret: its keeper removes it when the job ends.
            secret_file = job_dir / SECRET_FILE
            fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(self.transport.secret or b"")
            job = JobRecord(job_id, message.name or script.stem, script.name, list(message.args),
                            max(0, message.cores), _owner(), time.time(), job_dir=job_dir,
                            py_files=py_files)
            write_job_file(job_dir, job.facts())
        except OSError as exc:
            shutil.rmtree(job_dir, ignore_errors=True)
            self.send(identity, JobRejected(f"could not store the job: {exc}"))
            return
        env = dict(os.environ)
        python_path = [str(job_dir)] + [str(job_dir / n) for n in py_files if n.endswith((".zip", ".egg"))]
        env.update({
            constants.ENV_MASTER: self.master_url,
            constants.ENV_JOB_ID: job_id,
            constants.ENV_APP_NAME: job.name,
            constants.ENV_CORES: str(job.cores_wanted),
            constants.ENV_SECRET_FILE: str(secret_file),
            constants.ENV_BIND_HOST: self.host if self.host not in ("0.0.0.0", "*", "") else self.advertise_host,
            "PYTHONPATH": os.pathsep.join(python_path + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "PYTHONUNBUFFERED": "1",
        })
        if message.quiet:
            env[constants.ENV_QUIET] = "1"
        self.jobs[job_id] = job
        try:
            job.process = JobProcess.start(job_id, job_dir, script, job.args, env,
                                           self.segment_bytes, OUTPUT_SEGMENTS,
                                           supervise=message.supervise)
        except OSError as exc:
            self._finish_job(job, FAILED, -1, f"could not start the job: {exc}")
            self.send(identity, JobRejected(job.message))
            return
        if not message.detach:
            job.watchers[identity] = Watcher(job.output_tails(0, 0))
        self.send(identity, JobAccepted(job_id))
        log.info("job %s (%s) started in %s", job_id, job.name, job_dir)
        self._forget_old_jobs()

    def _new_job_id(self) -> str:
        """The next free job id. After a restart on the same work dir the old jobs' dirs
        are still there, and jobs that outlived the old service may register again."""
        while True:
            job_id = f"job-{next(self._job_numbers):04d}"
            if job_id not in self.jobs and not (self.work_dir / "jobs" / job_id).exists():
                return job_id

    def _known_job(self, identity: bytes, job_id: str) -> JobRecord | None:
        """The job ``job_id``; None once ``identity`` was told there is no such job."""
        job = self.jobs.get(job_id)
        if job is None:
            self.send(identity, JobUnknown(job_id, f"no such job in its work dir {self.work_dir}"))
        return job

    def _attach(self, identity: bytes, message: AttachJob, now: float) -> None:
        job = self._known_job(identity, message.job_id)
        if job is None:
            return
        job.watchers[identity] = Watcher(job.output_tails(message.stdout_offset,
                                                          message.stderr_offset))
        if job.state == RUNNING:
            self.send(identity, CommandResult(True, f"attached to {job.job_id}"))
            if job.ui_url:
                self.send(identity, JobStatusPages(job.job_id, job.name, job.ui_url))
        self._feed_watchers(job)  # an ended job: the rest of its output, then its end

    def _feed_watchers(self, job: JobRecord) -> None:
        """Send each watcher the job's output it does not have yet (a bounded amount per
        call, so that one busy job cannot hold the loop), and an ended job's end once it
        has all of it."""
        for identity, watcher in list(job.watchers.items()):
            budget = WATCHER_BYTES_PER_PASS
            reachable = True
            for stream, tail in watcher.tails.items():
                while budget > 0 and reachable:
                    chunk = tail.read(min(OUTPUT_CHUNK_BYTES, watcher.room(stream, budget)))
                    if chunk is None:
                        break
                    offset, data = chunk
                    budget -= len(data)
                    reachable = self.send(identity, JobOutput(job.job_id, stream, offset, payload=[data]))
            if not reachable:
                job.watchers.pop(identity, None)
            elif budget <= 0:
                continue  # more to send: on the next pass
            elif job.state != RUNNING:  # (budget left: all it had was read)
                self.send(identity, JobEnded(job.job_id, job.state,
                                             -1 if job.exit_code is None else job.exit_code,
                                             job.message))
                job.watchers.pop(identity, None)
            elif watcher.stop_at is not None:
                # Everything up to where the output ended when asked (or all there is, if
                # the oldest of it was dropped meanwhile).
                self.send(identity, JobLogsEnd(job.job_id, job.state))
                job.watchers.pop(identity, None)

    intake_handlers = {
        SubmitJob: _submit,
        AttachJob: _attach,
    }


def _owner() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not an error
        return "unknown"
