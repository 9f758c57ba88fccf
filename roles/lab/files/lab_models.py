"""Makes the lab's tiny models and their single-process reference outputs.

Runs inside the lab engine's root file system (vLLM's CPU build, torch, transformers,
tokenizers), started by the lab role with systemd-nspawn:

    python3 lab_models.py SPECS.json PROFILES_DIR OUT_DIR
    python3 lab_models.py generate MODEL_DIR RUN.json OUT.json   (one run: see generate())

SPECS.json is a list of model specs (the lab role's ``lab_engine_models``):
``{"name": ..., "seed": 0, "reference": {"dtype": "float32", "max_tokens": 16,
"prompts": [...]}}`` (plus ``speculative_config`` to record the reference's tokens and
acceptance with MTP too); the model's shape is its bundled profile,
PROFILES_DIR/<name>/config.json (the collection's recipes/models/), made by the maker of its
architecture (a Llama with transformers, a MiMo V2 written tensor by tensor).

For each spec it writes OUT_DIR/<name>/: ``config.json`` and ``model.safetensors`` (random
weights of the profile's shape from the seed), a byte-level BPE
tokenizer trained on a fixed
local text with a chat template (no hub), and ``dgxspark-reference.json``: the greedy tokens
and their logprobs that vLLM serves for the reference prompts in ONE process (tensor parallel
size 1). A cluster serving the same model must return the same tokens (verify role).

Nothing here is a real language model: the weights are random, the answers are noise.

    python3 lab_models.py hybrid MODEL_DIR BASE_OUT MTP_OUT COLLECTION_ROOT

makes a made model a *hybrid source*, as GLM-5.2 NVFP4 comes (an NVFP4 base without its
trained MTP layer, the MTP layer from a second repository): BASE_OUT gets every file of
MODEL_DIR with the MTP layer's tensors taken out of the shards and an index of the rest;
MTP_OUT gets one shard with only the MTP layer's tensors, its index and config.json. The
model role assembles them back (hard links, merged index) and distributes the result
(split_hybrid; runs on the lab host with the collection's checkpoint reader, no torch).

    python3 lab_models.py sync SRC_DIR NODES_DIR MODELS_DIR NODE,... MODEL,...

gives every node every model: SRC_DIR/<model>/ to NODES_DIR/<node>/merged<MODELS_DIR>/<model>/,
copying only the files whose size or modification time differ (a re-run copies nothing);
prints the files it wrote as JSON (sync_models; runs on the lab host, standard library only).
"""
import json
import os
import shutil
import sys
import time

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Reply with exactly: SPARKOK",
    "DGX Spark clusters serve very large mixture of experts models with vLLM.",
    "Tensor parallel ranks exchange activations over the RoCE fabric.",
    "Hello world, this is a tiny model made by the dgxspark lab.",
    "0 1 2 3 4 5 6 7 8 9 { } [ ] ( ) : ; , . ? ! - + * / = < > \" ' _",
]

CHAT_TEMPLATE = (
    "{% for message in messages %}<s>{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}<s>assistant:{% endif %}"
)


def make_tokenizer(out, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "<s>", "</s>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=min(vocab_size, 1000), special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS * 20, trainer)
    # The model's vocabulary is what TP must divide: fill it up with named extra tokens so
    # that every id the random model can emit decodes.
    fill = vocab_size - tok.get_vocab_size()
    if fill < 0:
        raise SystemExit("vocab_size %d is smaller than the trained tokenizer (%d)"
                         % (vocab_size, tok.get_vocab_size()))
    tok.add_tokens(["<|extra_%d|>" % i for i in range(fill)])
    if tok.get_vocab_size() != vocab_size:
        raise SystemExit("tokenizer has %d tokens, the model %d" % (tok.get_vocab_size(),
                                                                    vocab_size))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return fast


def make_llama(out, spec, config):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(spec.get("seed", 0))
    model = LlamaForCausalLM(LlamaConfig(**config))
    model.save_pretrained(out, safe_serialization=True)
    return config["vocab_size"]


def make_mimo_v2(out, spec, config):
    """A MiMo-V2-Flash-shaped checkpoint (vLLM's MiMoV2FlashForCausalLM) with random weights.

    transformers has no MiMo V2 model that writes vLLM's layout, so the tensors are written
    with the names vLLM 0.32's models/mimo_v2.py and mimo_v2_mtp.py load: separate q/k/v
    projections (the Flash layout), ``attention_sink_bias`` on sliding-window layers,
    ``moe_layer_freq`` dense/MoE layers (experts with ``gate``, ``e_score_correction_bias``)
    and the first MTP module under ``model.mtp.layers.0``. Norm weights are 1; the sink
    biases and the router bias are drawn with unit scale so that they matter.

    The MTP module is made to agree with the model, as training makes a real one: the
    layers' output projections (o_proj, down_proj) are small next to the embeddings, so the
    next token depends mostly on the current one, and the MTP module's eh_proj passes the
    embedding of the token it is given through (plus a little of the previous hidden
    state). The draft then predicts what the model will say for most tokens, and its
    acceptance measures whether the draft computes at TP3 what it computes at TP1.
    """
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(spec.get("seed", 0))
    scale = config.get("initializer_range", 0.1)

    def rand(*shape, std=scale):
        return (torch.randn(*shape, generator=generator) * std).contiguous()

    hidden = config["hidden_size"]
    dense = config["intermediate_size"]
    out_scale = scale / 64  # o_proj and down_proj: small next to the embeddings
    tensors = {}

    def attention(prefix, swa):
        heads = config["swa_num_attention_heads" if swa else "num_attention_heads"]
        kv_heads = config["swa_num_key_value_heads" if swa else "num_key_value_heads"]
        head_dim = config["swa_head_dim" if swa else "head_dim"]
        v_head_dim = config.get("swa_v_head_dim" if swa else "v_head_dim", head_dim)
        tensors[prefix + ".q_proj.weight"] = rand(heads * head_dim, hidden)
        tensors[prefix + ".k_proj.weight"] = rand(kv_heads * head_dim, hidden)
        tensors[prefix + ".v_proj.weight"] = rand(kv_heads * v_head_dim, hidden)
        tensors[prefix + ".o_proj.weight"] = rand(hidden, heads * v_head_dim, std=out_scale)
        if swa and config.get("add_swa_attention_sink_bias"):
            tensors[prefix + ".attention_sink_bias"] = rand(heads, std=1.0)

    def mlp(prefix, width):
        tensors[prefix + ".gate_proj.weight"] = rand(width, hidden)
        tensors[prefix + ".up_proj.weight"] = rand(width, hidden)
        tensors[prefix + ".down_proj.weight"] = rand(hidden, width, std=out_scale)

    tensors["model.embed_tokens.weight"] = rand(config["vocab_size"], hidden, std=1.0)
    for layer in range(config["num_hidden_layers"]):
        prefix = "model.layers.%d" % layer
        tensors[prefix + ".input_layernorm.weight"] = torch.ones(hidden)
        tensors[prefix + ".post_attention_layernorm.weight"] = torch.ones(hidden)
        attention(prefix + ".self_attn", config["hybrid_layer_pattern"][layer] == 1)
        if config["moe_layer_freq"][layer]:
            experts = config["n_routed_experts"]
            tensors[prefix + ".mlp.gate.weight"] = rand(experts, hidden)
            tensors[prefix + ".mlp.gate.e_score_correction_bias"] = rand(experts, std=1.0)
            for expert in range(experts):
                mlp("%s.mlp.experts.%d" % (prefix, expert), config["moe_intermediate_size"])
        else:
            mlp(prefix + ".mlp", dense)
    tensors["model.norm.weight"] = torch.ones(hidden)
    tensors["lm_head.weight"] = rand(config["vocab_size"], hidden)
    # The MTP module: vLLM loads the first one; it uses the sliding-window attention shape.
    mtp = "model.mtp.layers.0"
    for name in ("enorm", "hnorm", "input_layernorm", "pre_mlp_layernorm", "final_layernorm"):
        tensors["%s.%s.weight" % (mtp, name)] = torch.ones(hidden)
    tensors[mtp + ".eh_proj.weight"] = torch.cat(
        [torch.eye(hidden), rand(hidden, hidden, std=out_scale)], dim=1).contiguous()
    attention(mtp + ".self_attn", True)
    mlp(mtp + ".mlp", dense)
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as handle:
        json.dump(dict(config, architectures=["MiMoV2FlashForCausalLM"],
                       model_type="mimo_v2_flash"), handle, indent=1)
    return config["vocab_size"]


MAKERS = {"LlamaForCausalLM": make_llama, "MiMoV2FlashForCausalLM": make_mimo_v2}


SPEC_DECODE_METRICS = {
    "vllm:spec_decode_num_drafts": "drafts",
    "vllm:spec_decode_num_draft_tokens": "draft_tokens",
    "vllm:spec_decode_num_accepted_tokens": "accepted_tokens",
    "vllm:spec_decode_num_accepted_tokens_per_pos": "accepted_per_position",
}


def generate(model, run):
    """Greedy tokens, their logprobs and top-1 margins for token-id prompts, one vLLM engine.

    ``run``: ``prompt_token_ids`` (lists), ``max_tokens``, ``dtype``, optional
    ``max_model_len`` and ``kv_cache_memory_bytes``, and ``engine``: more vLLM engine
    arguments (tensor_parallel_size, distributed_executor_backend, hf_overrides,
    speculative_config, ...). With a speculative config the result also has ``speculative``:
    vLLM's draft and acceptance counters.
    """
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    started = time.time()
    engine = dict(run.get("engine") or {})
    llm = LLM(model=model, dtype=run["dtype"], enforce_eager=True, seed=0,
              max_model_len=run.get("max_model_len", 256),
              kv_cache_memory_bytes=run.get("kv_cache_memory_bytes", 64 * 1024 * 1024),
              disable_log_stats="speculative_config" not in engine, **engine)
    params = SamplingParams(temperature=0, max_tokens=run["max_tokens"], logprobs=2,
                            ignore_eos=True)
    outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in run["prompt_token_ids"]],
                           params)
    requests = []
    for ids, output in zip(run["prompt_token_ids"], outputs):
        done = output.outputs[0]
        chosen = [lp[t].logprob for lp, t in zip(done.logprobs, done.token_ids)]
        margins = []
        for lp, t in zip(done.logprobs, done.token_ids):
            others = [v.logprob for k, v in lp.items() if k != t]
            margins.append(lp[t].logprob - max(others) if others else None)
        requests.append({"prompt_token_ids": ids, "token_ids": list(done.token_ids),
                         "logprobs": chosen, "margins": margins})
    result = {"requests": requests, "seconds": round(time.time() - started, 1)}
    if "speculative_config" in engine:
        counters = dict((SPEC_DECODE_METRICS[m.name], m.values if hasattr(m, "values")
                         else m.value) for m in llm.get_metrics()
                        if m.name in SPEC_DECODE_METRICS)
        counters["acceptance_rate"] = (counters["accepted_tokens"] /
                                       float(counters["draft_tokens"] or 1))
        result["speculative"] = dict(counters, config=engine["speculative_config"])
    return result


def reference(out, spec, tokenizer):
    """Greedy tokens and logprobs of the reference prompts, vLLM in one process (TP 1).

    With ``speculative_config`` in the spec's reference, the same prompts again with
    speculative decoding (MTP), in a second process: its tokens (which must be the same) and
    its acceptance counters are kept under ``speculative``.
    """
    ref = spec["reference"]
    prompts = [tokenizer.encode(text) for text in ref["prompts"]]
    run = {"prompt_token_ids": prompts, "max_tokens": ref["max_tokens"], "dtype": ref["dtype"],
           "max_model_len": ref.get("max_model_len", 256),
           "kv_cache_memory_bytes": ref.get("kv_cache_memory_bytes", 64 * 1024 * 1024),
           "engine": {"tensor_parallel_size": 1}}
    result = generate(out, run)
    for text, request in zip(ref["prompts"], result["requests"]):
        request["prompt"] = text
    import vllm
    data = {
        "model": spec["name"],
        "made_by": "dgxspark lab (roles/lab/files/lab_models.py)",
        "engine": "vLLM %s CPU build, one process, tensor_parallel_size 1" % vllm.__version__,
        "dtype": ref["dtype"],
        "max_tokens": ref["max_tokens"],
        "seconds": result["seconds"],
        "note": "random weights: the tokens are noise, but a correct cluster returns the same "
                "noise",
        "requests": result["requests"],
    }
    if ref.get("speculative_config"):
        run["engine"]["speculative_config"] = ref["speculative_config"]
        spec_run = generate_in_process(out, run)
        data["speculative"] = dict(
            spec_run["speculative"], token_ids=[r["token_ids"] for r in spec_run["requests"]],
            same_tokens=[r["token_ids"] for r in spec_run["requests"]] ==
            [r["token_ids"] for r in result["requests"]])
    return data


def generate_in_process(model, run):
    """``generate`` in a fresh Python process (one vLLM engine per process)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        run_path, out_path = os.path.join(tmp, "run.json"), os.path.join(tmp, "out.json")
        with open(run_path, "w") as handle:
            json.dump(run, handle)
        subprocess.run([sys.executable, os.path.abspath(__file__), "generate", model,
                        run_path, out_path], check=True)
        with open(out_path) as handle:
            return json.load(handle)


def split_hybrid(model_dir, base_out, mtp_out, collection_root):
    """Split the made model ``model_dir`` into a hybrid source (see the module docstring).

    The MTP layer's prefixes come from its config.json (the collection's
    checkpoint.mtp_prefixes: MiMo V2 ``model.mtp.layers.0.``, GLM/DeepSeek ``model.layers.<n>.``).
    Returns ``{"prefixes", "base_tensors", "mtp_tensors"}``; refuses a model without an MTP
    layer. Idempotent: outputs already made from the same files are rewritten identically."""
    import shutil

    sys.path.insert(0, os.path.join(os.path.abspath(collection_root), "plugins"))
    from module_utils import checkpoint as ckpt
    from module_utils.model import filter_shard

    with open(os.path.join(model_dir, "config.json")) as handle:
        config = json.load(handle)
    prefixes = tuple(ckpt.mtp_prefixes(config) or ())
    found = ckpt.tensors(model_dir)
    mtp = sorted(t for t in found if prefixes and t.startswith(prefixes))
    if not mtp:
        raise SystemExit("lab_models: %s has no MTP layer (%s): nothing to split"
                         % (model_dir, ", ".join(prefixes) or "no MTP prefix for its architecture"))
    for out in (base_out, mtp_out):
        os.makedirs(out, exist_ok=True)
    base_map, mtp_map = {}, {}
    shards = sorted(set(info["file"] for info in found.values()))
    for name in os.listdir(model_dir):
        src = os.path.join(model_dir, name)
        if name in shards or name == ckpt.INDEX or not os.path.isfile(src):
            continue
        shutil.copy2(src, os.path.join(base_out, name))
    for shard in shards:
        keep = sorted(t for t, info in found.items() if info["file"] == shard and t not in mtp)
        if keep:
            filter_shard(os.path.join(model_dir, shard), os.path.join(base_out, shard), keep)
            base_map.update((t, shard) for t in keep)
        moved = sorted(t for t, info in found.items() if info["file"] == shard and t in mtp)
        if moved:
            name = "mtp-" + shard
            filter_shard(os.path.join(model_dir, shard), os.path.join(mtp_out, name), moved)
            mtp_map.update((t, name) for t in moved)
    ckpt.write_index(base_out, base_map)
    ckpt.write_index(mtp_out, mtp_map)
    shutil.copy2(os.path.join(model_dir, "config.json"), os.path.join(mtp_out, "config.json"))
    return {"prefixes": list(prefixes), "base_tensors": len(base_map), "mtp_tensors": len(mtp_map)}


def sync_tree(src, dest):
    """Every file under ``src`` to the same place under ``dest`` where the size or the
    modification time (whole seconds) differs, with its mode and times (shutil.copy2); nothing
    is removed. Returns the files written."""
    written = []
    for root, dummy, files in os.walk(src):
        target = os.path.normpath(os.path.join(dest, os.path.relpath(root, src)))
        os.makedirs(target, exist_ok=True)
        for name in sorted(files):
            source, copy = os.path.join(root, name), os.path.join(target, name)
            have = os.stat(source)
            try:
                there = os.stat(copy)
            except FileNotFoundError:
                there = None
            if there is None or there.st_size != have.st_size \
                    or int(there.st_mtime) != int(have.st_mtime):
                shutil.copy2(source, copy)
                written.append(copy)
    return written


def sync_models(src_dir, nodes_dir, models_dir, nodes, models):
    """Every model of ``models`` (directories of ``src_dir``) onto every node of ``nodes``
    (their root file systems at ``nodes_dir``/<node>/merged), at ``models_dir``/<model>."""
    written = []
    for node in nodes:
        for model in models:
            written += sync_tree(os.path.join(src_dir, model), os.path.join(
                nodes_dir, node, "merged" + models_dir, model))
    return {"written": written}


def main():
    if sys.argv[1] == "sync":
        # python3 lab_models.py sync SRC_DIR NODES_DIR MODELS_DIR NODE,... MODEL,...
        src_dir, nodes_dir, models_dir, nodes, models = sys.argv[2:7]
        print(json.dumps(sync_models(src_dir, nodes_dir, models_dir,
                                     [n for n in nodes.split(",") if n],
                                     [m for m in models.split(",") if m])))
        return
    if sys.argv[1] == "hybrid":
        # python3 lab_models.py hybrid MODEL_DIR BASE_OUT MTP_OUT COLLECTION_ROOT
        print(json.dumps(split_hybrid(*sys.argv[2:6])))
        return
    if sys.argv[1] == "generate":
        # python3 lab_models.py generate MODEL_DIR RUN.json OUT.json (see generate())
        with open(sys.argv[3]) as handle:
            result = generate(sys.argv[2], json.load(handle))
        with open(sys.argv[4], "w") as handle:
            json.dump(result, handle, indent=1)
        return
    specs_path, profiles, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(specs_path) as handle:
        specs = json.load(handle)
    for spec in specs:
        out = os.path.join(out_dir, spec["name"])
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(profiles, spec["name"], "config.json")) as handle:
            profile = json.load(handle)
        architecture = profile["architectures"][0]
        config = dict((k, v) for k, v in profile.items()
                      if k not in ("_provenance", "architectures", "model_type"))
        maker = MAKERS.get(architecture)
        if maker is None:
            raise SystemExit("lab_models: no maker for architecture %s (known: %s)"
                             % (architecture, ", ".join(sorted(MAKERS))))
        vocab_size = maker(out, spec, config)
        tokenizer = make_tokenizer(out, vocab_size)
        result = reference(out, spec, tokenizer)
        low = [m for r in result["requests"] for m in r["margins"] if m is not None]
        result["min_margin"] = min(low) if low else None
        with open(os.path.join(out, "dgxspark-reference.json"), "w") as handle:
            json.dump(result, handle, indent=1)
        print("lab_models: %s made (reference in %.1f s, smallest top-1 margin %.4f)"
              % (spec["name"], result["seconds"], result["min_margin"] or 0))


if __name__ == "__main__":
    main()
