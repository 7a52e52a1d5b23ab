"""LLM inference metering: prefill and decode windows around a generate call, token counts
read from the tensors, the sweep and its J/token figures and report."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from joulemeter.integrations.llm import (  # noqa: E402
    meter_generate,
    meter_stream,
    output_lengths,
    sweep_generation,
    sweep_points,
)
from joulemeter.meter import EnergyMeter  # noqa: E402
from joulemeter.meter.errors import MeterStateError  # noqa: E402
from joulemeter.reports.llm import generation_figures, sweep_figures  # noqa: E402
from joulemeter.reports.render.llm import render_llm_html  # noqa: E402
from tests.doubles import LinearCounterSource  # noqa: E402

POWER_W = 40.0
EOS = 1


def counter() -> list:
    return [LinearCounterSource(POWER_W, domain="cpu", kind="cpu")]


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=32, n_positions=64, n_embd=16, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=EOS
    )
    return transformers.GPT2LMHeadModel(config).eval()


def windows_by_path(run):
    return {w.path: w for w in run.windows}


def test_prefill_counts_the_prompts_non_padding_tokens_and_decode_the_new_ones(gpt2):
    ids = torch.randint(2, 32, (3, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding of the first prompt
    mask[2, :1] = 0
    with EnergyMeter("gen", store=False, sources=counter()) as m:
        out, generation = meter_generate(gpt2, ids, mask, max_new_tokens=5, do_sample=False, pad_token_id=EOS)
    windows = windows_by_path(m.run)
    assert windows["generate/prefill"].units["input_tokens"] == int(mask.sum()) == 7 + 3 + 6
    assert generation.input_lengths == [3, 7, 6]
    # new tokens per sequence, recounted here from the output: up to the first end token
    expected = []
    for row in out[:, ids.shape[1]:].tolist():
        expected.append(row.index(EOS) + 1 if EOS in row else len(row))
    assert generation.output_lengths == expected
    assert windows["generate"].units["output_tokens"] == sum(expected)
    assert windows["generate"].units["sequences"] == 3
    if "generate/decode" in windows:  # the first token of each sequence comes from prefill
        assert windows["generate/decode"].units["output_tokens"] == sum(n - 1 for n in expected)


def test_time_to_first_token_is_the_prefill_window_and_decode_follows_it(gpt2):
    ids = torch.randint(2, 32, (2, 6), generator=torch.Generator().manual_seed(2))
    with EnergyMeter("gen", store=False, sources=counter()) as m:
        _, generation = meter_generate(
            gpt2, ids, max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=EOS
        )
    windows = windows_by_path(m.run)
    prefill, decode, outer = windows["generate/prefill"], windows["generate/decode"], windows["generate"]
    assert outer.start_s <= prefill.start_s < prefill.end_s <= decode.start_s < decode.end_s <= outer.end_s
    assert generation.output_lengths == [4, 4] and generation.decode_tokens == 6
    assert 0 < generation.ttft_s < generation.duration_s
    (figures,) = generation_figures(m.run)
    assert figures.ttft_s == pytest.approx(prefill.duration_s)
    # a constant 40 W counter: energy per token is 40 W × window time ÷ tokens
    assert figures.energy_per_input_token_j == pytest.approx(POWER_W * prefill.duration_s / 12, rel=0.02)
    assert figures.energy_per_output_token_j == pytest.approx(POWER_W * outer.duration_s / 8, rel=0.02)
    assert figures.energy_per_decode_token_j == pytest.approx(POWER_W * decode.duration_s / 6, rel=0.02)


def test_window_edges_synchronise_the_device(gpt2):
    calls = []
    ids = torch.randint(2, 32, (1, 5))
    with EnergyMeter("gen", store=False, sources=counter(), sync=lambda: calls.append(1)) as m:
        meter_generate(gpt2, ids, max_new_tokens=3, min_new_tokens=3, do_sample=False, pad_token_id=EOS)
    assert len(m.run.windows) == 3
    assert len(calls) == 2 * 3  # every edge of generate, prefill and decode waited for the device


def test_any_callable_that_streams_like_transformers_is_metered():
    ids = torch.tensor([[5, 6, 7]])

    def stream(streamer):
        streamer.put(ids)  # the prompt first, as transformers does
        tokens = []
        for t in (9, 10, EOS, EOS):
            tokens.append(t)
            streamer.put(torch.tensor([t]))
        streamer.end()
        return torch.cat([ids, torch.tensor([tokens])], dim=1)

    with EnergyMeter("stream", store=False, sources=counter()) as m:
        _, generation = meter_stream(stream, ids, eos_token_id=EOS)
    assert generation.output_lengths == [3]  # 9, 10 and the end token; the pad after it is not counted
    assert windows_by_path(m.run)["generate/decode"].units["output_tokens"] == 2


def test_output_lengths_stop_at_each_sequences_first_end_token():
    out = torch.tensor([[4, 4, 8, 2, 3, 3], [4, 4, 3, 3, 3, 3], [4, 4, 8, 8, 8, 8]])
    assert output_lengths(out, 2, eos_token_id=3) == [3, 1, 4]
    assert output_lengths(out, 2, eos_token_id=[2, 3]) == [2, 1, 4]
    assert output_lengths(out, 2) == [4, 4, 4]


def test_a_failing_generate_closes_its_windows_and_the_run_keeps_them():
    def broken(streamer):
        streamer.put(torch.tensor([[1, 2]]))
        streamer.put(torch.tensor([3]))
        raise RuntimeError("out of memory")

    with EnergyMeter("fails", store=False, sources=counter()) as m:
        with pytest.raises(RuntimeError, match="out of memory"):
            meter_stream(broken, torch.tensor([[1, 2]]))
        m.count(1, "after")  # the meter still runs
    assert {w.path for w in m.run.windows} == {"generate", "generate/prefill", "generate/decode"}
    assert all(w.end_s is not None for w in m.run.windows)


def test_metering_generate_without_a_running_meter_says_what_to_do(gpt2):
    with pytest.raises(MeterStateError, match="inside `with EnergyMeter"):
        meter_generate(gpt2, torch.tensor([[2, 3]]), max_new_tokens=1)


def test_a_mask_that_does_not_match_the_ids_is_refused():
    with EnergyMeter("bad", store=False, sources=counter()):
        with pytest.raises(ValueError, match="attention_mask"):
            meter_stream(lambda s: None, torch.ones(2, 3, dtype=torch.long), torch.ones(2, 4))


@pytest.fixture(scope="module")
def sweep(gpt2):
    points = sweep_points([1, 3], [4], [3])
    generator = torch.Generator().manual_seed(3)
    run = sweep_generation(
        gpt2, lambda b, n: torch.randint(2, 32, (b, n), generator=generator), points,
        trials=2, store=False, sources=counter(),
    )
    return run, points


def test_sweep_runs_every_point_with_its_trials_and_exact_lengths(sweep, gpt2):
    run, points = sweep
    figures = sweep_figures(run)
    assert [f.name for f in figures] == [p.name for p in points] == ["b1-in4-out3", "b3-in4-out3"]
    for point, f in zip(points, figures):
        assert len(f.calls) == 2 and f.per_output_token_j.trials == 2
        for call in f.calls:
            assert call.input_tokens == point.batch_size * point.input_length
            assert call.output_tokens == point.batch_size * point.new_tokens
        assert f.per_output_token_j.half_width is not None
    assert run.metadata["parameters"] == sum(p.numel() for p in gpt2.parameters())
    assert [r["batch_size"] for r in run.metadata["llm_sweep"]] == [1, 3]


@pytest.mark.slow
def test_sweep_report_has_the_curves_and_every_point(sweep):
    run, points = sweep
    html = render_llm_html(run)
    assert "<svg" in html and "Energy per token" in html
    for point in points:
        assert point.name in html


def test_sweep_points_refuse_a_zero_length():
    with pytest.raises(ValueError, match="at least 1"):
        sweep_points([1], [0], [4])
