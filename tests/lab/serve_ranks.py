"""vLLM's Ray-free multi-node launch with every node rank on one host, and the reference asked.

Runs inside the lab engine's root file system (systemd-nspawn, private network: loopback
only), started by tests/lab/test_virtual_heads.py:

    python3 serve_ranks.py RUN.json OUT.json

RUN.json: ``ranks``, one ``vllm serve`` argv per node rank (rank 0 the head with the API, the
others ``--headless``), as the vllm_cluster role renders them; ``url`` of the head's API,
``model`` (served name), ``reference`` (path of dgxspark-reference.json), ``timeout`` (s).
The workers start first, then the head; once the head is healthy the reference prompts are
asked (greedy, token ids in and out, logprobs), then the head's speculative-decoding counters
are read from /metrics, and every rank is stopped. OUT.json: ``requests`` (token_ids,
logprobs) and ``speculative`` (drafts, draft_tokens, accepted_tokens, accepted_per_position).
"""
import json
import re
import subprocess
import sys
import time
import urllib.request

COUNTERS = {"vllm:spec_decode_num_drafts_total": "drafts",
            "vllm:spec_decode_num_draft_tokens_total": "draft_tokens",
            "vllm:spec_decode_num_accepted_tokens_total": "accepted_tokens"}
PER_POSITION = "vllm:spec_decode_num_accepted_tokens_per_pos_total"


def get(url, body=None, timeout=600):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read().decode()


def wait_healthy(run, ranks):
    deadline = time.time() + run["timeout"]
    while time.time() < deadline:
        for number, rank in enumerate(ranks):
            if rank.poll() is not None:
                raise SystemExit("node rank %d exited with %s before the head was healthy"
                                 % (number, rank.returncode))
        try:
            get(run["url"] + "/health", timeout=5)
            return
        except OSError:
            time.sleep(3)
    raise SystemExit("the head was not healthy after %d s" % run["timeout"])


def speculative_counters(metrics):
    out = {"accepted_per_position": {}}
    for line in metrics.splitlines():
        match = re.match(r'^([a-z_:]+)\{([^}]*)\} ([0-9.e+]+)$', line)
        if not match:
            continue
        name, labels, value = match.groups()
        if name in COUNTERS:
            out[COUNTERS[name]] = int(float(value))
        elif name == PER_POSITION:
            position = int(re.search(r'position="([0-9]+)"', labels).group(1))
            out["accepted_per_position"][position] = int(float(value))
    positions = out["accepted_per_position"]
    out["accepted_per_position"] = [positions[p] for p in sorted(positions)]
    return out


def main():
    with open(sys.argv[1]) as handle:
        run = json.load(handle)
    with open(run["reference"]) as handle:
        reference = json.load(handle)
    ranks = []
    try:
        # Workers first, then the head (the vllm_cluster role's order).
        for number in list(range(1, len(run["ranks"]))) + [0]:
            log = open("/work/rank%d.log" % number, "w")
            ranks.append(subprocess.Popen(run["ranks"][number], stdout=log,
                                          stderr=subprocess.STDOUT))
        wait_healthy(run, ranks)
        requests = []
        for item in reference["requests"]:
            answer = json.loads(get(run["url"] + "/v1/completions", {
                "model": run["model"], "prompt": item["prompt_token_ids"],
                "max_tokens": reference["max_tokens"], "temperature": 0, "logprobs": 1,
                "ignore_eos": True, "return_tokens_as_token_ids": True}))
            logprobs = answer["choices"][0]["logprobs"]
            requests.append({"token_ids": [int(t.split(":", 1)[1]) for t in logprobs["tokens"]],
                             "logprobs": logprobs["token_logprobs"]})
        out = {"requests": requests,
               "speculative": speculative_counters(get(run["url"] + "/metrics"))}
    finally:
        for rank in ranks:
            rank.terminate()
        for rank in ranks:
            try:
                rank.wait(30)
            except subprocess.TimeoutExpired:
                rank.kill()
    with open(sys.argv[2], "w") as handle:
        json.dump(out, handle, indent=1)


if __name__ == "__main__":
    main()
