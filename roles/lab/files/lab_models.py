"""Makes the lab's tiny models and their single-process reference outputs.

Runs inside the lab engine's root file system (vLLM's CPU build, torch, transformers,
tokenizers), started by the lab role with systemd-nspawn:

    python3 lab_models.py SPECS.json PROFILES_DIR OUT_DIR

SPECS.json is a list of model specs (the lab role's ``lab_engine_models``):
``{"name": ..., "seed": 0, "reference": {"dtype": "float32", "max_tokens": 16,
"prompts": [...]}}``; the model's shape is its bundled profile, PROFILES_DIR/<name>/config.json
(the collection's recipes/models/).

For each spec it writes OUT_DIR/<name>/: ``config.json`` and ``model.safetensors`` (random
weights of the profile's shape from the seed, made by transformers), a byte-level BPE
tokenizer trained on a fixed
local text with a chat template (no hub), and ``dgxspark-reference.json``: the greedy tokens
and their logprobs that vLLM serves for the reference prompts in ONE process (tensor parallel
size 1). A cluster serving the same model must return the same tokens (verify role).

Nothing here is a real language model: the weights are random, the answers are noise.
"""
import json
import os
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


MAKERS = {"LlamaForCausalLM": make_llama}


def reference(out, spec, tokenizer):
    """Greedy tokens and logprobs of the reference prompts, vLLM in one process (TP 1)."""
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    ref = spec["reference"]
    prompts = [tokenizer.encode(text) for text in ref["prompts"]]
    started = time.time()
    llm = LLM(model=out, dtype=ref["dtype"], enforce_eager=True, tensor_parallel_size=1,
              max_model_len=ref.get("max_model_len", 256), seed=0,
              kv_cache_memory_bytes=ref.get("kv_cache_memory_bytes", 64 * 1024 * 1024))
    params = SamplingParams(temperature=0, max_tokens=ref["max_tokens"], logprobs=2,
                            ignore_eos=True)
    outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params)
    requests = []
    for text, ids, output in zip(ref["prompts"], prompts, outputs):
        done = output.outputs[0]
        chosen = [lp[t].logprob for lp, t in zip(done.logprobs, done.token_ids)]
        margins = []
        for lp, t in zip(done.logprobs, done.token_ids):
            others = [v.logprob for k, v in lp.items() if k != t]
            margins.append(lp[t].logprob - max(others) if others else None)
        requests.append({"prompt": text, "prompt_token_ids": ids,
                         "token_ids": list(done.token_ids), "logprobs": chosen,
                         "margins": margins})
    import vllm
    return {
        "model": spec["name"],
        "made_by": "dgxspark lab (roles/lab/files/lab_models.py)",
        "engine": "vLLM %s CPU build, one process, tensor_parallel_size 1" % vllm.__version__,
        "dtype": ref["dtype"],
        "max_tokens": ref["max_tokens"],
        "seconds": round(time.time() - started, 1),
        "note": "random weights: the tokens are noise, but a correct cluster returns the same "
                "noise",
        "requests": requests,
    }


def main():
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
