#!/usr/bin/python3
"""The status page in a real headless browser (Debian's chromium, driven by
selenium through chromium-driver), against the real stack that `make run`
starts (scripts/broadway-run on a free port and a fresh data dir).

What a course staff member does: load /, sign in with the token, see a run
progress to "succeeded", open a failed student's job and read its output;
the page at phone width.  The token must stay out of every URL.
Screenshots are kept in build/web-test/ (the test's artifacts).
Bounded: every wait has a deadline; the whole test stops after 240 s."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, "build", "web-test")
STUDENTS = 8
FAILING = "s5"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """scripts/broadway-run in its own process group, on a fresh data dir."""

    def __init__(self):
        self.data = tempfile.mkdtemp(prefix="web-test-")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        env = dict(os.environ, BROADWAY_DATA=self.data, BROADWAY_PORT=str(self.port),
                   BROADWAY_LOG_STDOUT="0")
        self.log = open(os.path.join(self.data, "stack.log"), "w")
        self.proc = subprocess.Popen([os.path.join(REPO, "scripts", "broadway-run")],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            with open(os.path.join(self.data, "stack.log")) as f:
                if "ready on" in f.read():
                    break
            if self.proc.poll() is not None:
                raise SystemExit("web-test: the stack exited before ready")
            time.sleep(0.2)
        else:
            raise SystemExit("web-test: the stack was not ready after 60 s")
        with open(os.path.join(self.data, "token")) as f:
            self.token = f.read().strip()

    def call(self, method, path, body=None, worker=None):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        req.add_header("Authorization", self.token)
        if worker:
            req.add_header("worker_id", worker)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, None

    def stop(self, keep):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        self.log.close()
        if not keep:
            shutil.rmtree(self.data, ignore_errors=True)


def grader(stack, stop):
    """A grader that takes a job every ~0.4 s (so the progress is visible),
    failing student FAILING with output on stdout and stderr."""
    _, reg = stack.call("GET", "/api/v1/worker_register?hostname=web-test-grader")
    worker = reg["data"]["worker_id"]
    while not stop.is_set():
        status, job = stack.call("GET", "/api/v1/grading_job", worker=worker)
        if status != 200:
            time.sleep(0.2)
            continue
        job = job["data"]
        env = dict(e.split("=", 1) for e in job["stages"][0].get("env", []) if "=" in e) \
            if isinstance(job["stages"][0].get("env"), list) else job["stages"][0].get("env", {})
        netid = env.get("NETID", "post")
        ok = netid != FAILING
        time.sleep(0.4)
        stack.call("POST", "/api/v1/grading_job/" + job["job_id"], worker=worker, body={
            "success": ok,
            "info": [{"image": "grader", "exit_code": 0 if ok else 1, "duration_ms": 400,
                      "timed_out": False,
                      "stdout": "compiling %s\nrunning 12 tests\n" % netid,
                      "stderr": "" if ok else "test_sort: expected [1, 2, 3], got [3, 2, 1]\n"}],
            "logs": {"stdout": "compiling %s\n" % netid}})


def browser(width, height, phone=False):
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--disable-gpu", "--window-size=%d,%d" % (width, height)):
        opts.add_argument(a)
    if phone:  # a window cannot be narrower than 500 px: emulate the device
        opts.add_experimental_option("mobileEmulation", {"deviceMetrics": {
            "width": width, "height": height, "pixelRatio": 2}})
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=opts, service=service)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok - " + what)


def run(stack):
    os.makedirs(OUT, exist_ok=True)
    drv = browser(1280, 900)
    stop = threading.Event()
    try:
        wait = WebDriverWait(drv, 30)
        drv.get(stack.url + "/")
        wait.until(EC.visibility_of_element_located((By.ID, "token")))
        check("Sign in" in drv.page_source, "the page asks for the token")
        drv.find_element(By.ID, "token").send_keys("wrong-token")
        drv.find_element(By.CSS_SELECTOR, "#login button").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "login-error"), "refused"))
        check(True, "a wrong token is refused, on the page")
        drv.find_element(By.ID, "token").send_keys(stack.token)
        drv.find_element(By.CSS_SELECTOR, "#login button").click()
        wait.until(EC.visibility_of_element_located((By.ID, "nav")))
        check(stack.token not in drv.current_url, "the token is not in the URL")
        check(drv.execute_script("return sessionStorage.getItem('broadway-token')") == stack.token,
              "the token is kept in sessionStorage")

        config = {"students": [{"NETID": "s%d" % i} for i in range(STUDENTS)],
                  "student_pipeline": [{"image": "grader", "env": {"NETID": "$NETID"}}],
                  "post_processing_pipeline": [{"image": "grader"}]}
        status, created = stack.call("POST", "/api/v1/grading_run", config)
        check(status == 200, "a run is created")
        run_id = created["data"]["grading_run_id"]
        stack.call("POST", "/api/v1/grading_run/" + run_id)

        # The runs list shows it, then its page shows it advancing.
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, '[data-run="%s"]' % run_id)))
        check(True, "the runs list shows the new run (live refresh)")
        t = threading.Thread(target=grader, args=(stack, stop), daemon=True)
        t.start()
        drv.find_element(By.CSS_SELECTOR, '[data-run="%s"]' % run_id).click()
        wait.until(EC.presence_of_element_located((By.ID, "run-state")))
        WebDriverWait(drv, 60).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, '#jobs tr[data-state="succeeded"]'))
        drv.save_screenshot(os.path.join(OUT, "run-progress.png"))
        check(True, "jobs turn succeeded while the run goes on")
        WebDriverWait(drv, 90).until(
            EC.text_to_be_present_in_element((By.ID, "run-state"), "succeeded"))
        check(True, "the run reaches succeeded on the page")
        time.sleep(0.3)
        drv.save_screenshot(os.path.join(OUT, "run-succeeded.png"))
        done = drv.find_element(By.CSS_SELECTOR, ".counts .done").text
        check(done == "%d/%d done" % (STUDENTS + 1, STUDENTS + 1), "the counts read " + done)

        # The failed student: filter, open, read the output.
        drv.find_element(By.CSS_SELECTOR, 'button[data-filter="failed"]').click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")) == 1)
        row = drv.find_element(By.CSS_SELECTOR, "#jobs tbody tr")
        check(row.get_attribute("data-state") == "failed" and FAILING in row.text,
              "the failed filter shows student " + FAILING)
        row.find_element(By.TAG_NAME, "a").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "pre.stderr")))
        check("expected [1, 2, 3], got [3, 2, 1]" in drv.find_element(By.CSS_SELECTOR, "pre.stderr").text,
              "the failed job's stderr is on its page")
        check(drv.find_element(By.CSS_SELECTOR, ".exit-code").text == "1",
              "its stage's exit code is shown")
        drv.save_screenshot(os.path.join(OUT, "failed-job.png"))

        drv.get(stack.url + "/#/workers")
        wait.until(EC.text_to_be_present_in_element((By.ID, "workers"), "web-test-grader"))
        check(True, "the graders page lists the grader")
        drv.get(stack.url + "/#/queue")
        wait.until(EC.text_to_be_present_in_element((By.ID, "view"), "0 waiting"))
        check(True, "the queue page shows an empty queue")
        check(stack.token not in drv.current_url, "still no token in the URL")
    except Exception:
        drv.save_screenshot(os.path.join(OUT, "failure.png"))
        print("web-test: page at failure: %s (screenshot failure.png)" % drv.current_url)
        raise
    finally:
        stop.set()
        drv.quit()

    # A phone screen: the same run, one column, nothing wider than the screen.
    phone = browser(390, 844, phone=True)
    try:
        phone.get(stack.url + "/")
        phone.execute_script("sessionStorage.setItem('broadway-token', arguments[0])", stack.token)
        phone.get(stack.url + "/#/run/" + run_id)
        WebDriverWait(phone, 30).until(
            EC.text_to_be_present_in_element((By.ID, "run-state"), "succeeded"))
        overflow = phone.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth")
        check(phone.execute_script("return window.innerWidth") == 390, "the screen is 390 px wide")
        check(overflow <= 0, "no sideways scrolling at 390 px (%d px over)" % overflow)
        bar = phone.find_element(By.CSS_SELECTOR, ".bar .succeeded").size["width"]
        check(bar > 100, "the progress bar is drawn (%d px of succeeded)" % bar)
        phone.save_screenshot(os.path.join(OUT, "phone-run.png"))
        phone.get(stack.url + "/#/")
        WebDriverWait(phone, 30).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, '[data-run="%s"]' % run_id)))
        time.sleep(0.3)
        phone.save_screenshot(os.path.join(OUT, "phone-runs.png"))
    finally:
        phone.quit()


def main():
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("web-test: over 240 s")))
    signal.alarm(240)
    stack = Stack()
    ok = False
    try:
        run(stack)
        ok = True
    finally:
        stack.stop(keep=not ok)
        if not ok:
            print("web-test: FAILED; the stack's data dir is kept: " + stack.data)
    print("web-test: passed; screenshots in " + OUT)


if __name__ == "__main__":
    sys.exit(main())
