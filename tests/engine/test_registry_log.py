"""failure_summary: a registry's panic message is shown, not only its goroutine trace."""

from mirror.engine.registry_log import failure_summary

TRACE = "\n".join(["goroutine 1 [running]:"] + [f"\tframe {n}" for n in range(20)])
INFO = 'time="2026-11-24T06:20:53Z" level=info msg="redis not configured"'
PANIC = ("panic: s3aws: RequestError: send request failed\n"
         'caused by: Get "https://127.0.0.1:56407/b?prefix=scheduler-state.json": '
         "x509: certificate signed by unknown authority")


def test_the_panic_message_comes_first_with_its_caused_by_line():
    log = f"{INFO}\n{PANIC}\n\n{TRACE}\n"
    summary = failure_summary(log)
    assert summary.startswith(PANIC + "\n...\n")
    assert summary.endswith("\tframe 19") and "x509" in summary


def test_the_last_panic_of_a_restarting_container_is_the_one_shown():
    log = f"panic: StorageDriver not registered: azure\n\n{TRACE}\n{INFO}\n{PANIC}\n\n{TRACE}"
    assert failure_summary(log).splitlines()[0] == PANIC.splitlines()[0]


def test_without_a_panic_or_with_it_in_the_tail_the_tail_alone():
    assert failure_summary(f"{INFO}\nlisten tcp: address already in use") == \
        f"{INFO}\nlisten tcp: address already in use"
    short = f"{PANIC}\n\ngoroutine 1 [running]:"
    assert failure_summary(short) == short
    lines = "\n".join(f"line {n}" for n in range(40))
    assert failure_summary(lines) == "\n".join(f"line {n}" for n in range(25, 40))
