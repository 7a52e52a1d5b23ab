"""How figures are written in reports and on the CLI: every magnitude readable, nothing rounded to zero."""

import pytest

from joulemeter.reports.render import formatting


@pytest.mark.parametrize(
    ("energy_j", "text"),
    [
        (None, "—"),
        (0.0, "0 J"),
        (2.5e-6, "2.50 µJ"),
        (0.00264, "2.64 mJ"),
        (0.99962, "1.00 J"),
        (15.513, "15.5 J"),
        (999.7, "1.00 kJ"),
        (4200.0, "4.20 kJ (1.17 Wh)"),
        (3.6e8, "360 MJ (100 kWh)"),
        (1.22e11, "122 GJ (33.9 MWh)"),
    ],
)
def test_energy_keeps_three_digits_and_adds_kwh_from_one_watt_hour(energy_j, text):
    assert formatting.energy_with_kwh(energy_j) == text


@pytest.mark.parametrize(("kwh", "text"), [
    (4.03e-9, "4.03 µWh"), (0.0009996, "1.00 Wh"), (0.412, "412 Wh"), (12.4, "12.4 kWh"), (33_900, "33.9 MWh"),
    (0.0, "0 Wh"),
])
def test_watt_hours_are_scaled_for_a_reader_not_written_as_a_row_of_zeros(kwh, text):
    assert formatting.kwh(kwh) == text


@pytest.mark.parametrize(("kg", "text"), [
    (4.03e-9, "4.03 µg CO2e"), (6.13e-4, "613 mg CO2e"), (0.312, "312 g CO2e"), (4.21, "4.21 kg CO2e"),
    (552e3, "552 t CO2e"), (0.0, "0 g CO2e"),
])
def test_emissions_go_down_to_milligrams_and_micrograms(kg, text):
    assert formatting.co2e(kg) == text


@pytest.mark.parametrize(("litres", "text"), [
    (4.9e-6, "4.90 µL"), (0.312, "312 mL"), (1.2, "1.20 L"), (5.4e6, "5.40 ML"), (0.0, "0 L"), (None, "—"),
])
def test_water_is_scaled_to_a_prefix_not_a_row_of_zeros(litres, text):
    assert formatting.litres(litres) == text


@pytest.mark.parametrize(("amount", "text"), [
    (195_624.0, "196,000 EUR"), (1234.5678, "1,230 EUR"), (0.45, "0.450 EUR"), (6.13e-4, "0.000613 EUR"), (6.13e-5, "6.13 × 10⁻⁵ EUR"),
    (0.0023, "0.00230 EUR"), (6.13e-10, "6.13 × 10⁻¹⁰ EUR"), (0.0, "0 EUR"),
])
def test_money_has_three_significant_figures_in_its_own_unit_and_powers_of_ten_below_a_ten_thousandth(amount, text):
    assert formatting.money(amount, "EUR") == text
    assert "cent" not in formatting.money(amount, "EUR")


def test_a_range_is_written_in_the_unit_of_its_value():
    assert formatting.kwh(2_300.0, (1_240.0, 2_530.0)) == "2.30 MWh (range 1.24–2.53 MWh)"
    assert formatting.co2e(1_090.0, (591.0, 1_200.0)) == "1.09 t CO2e (range 0.591–1.20 t CO2e)"


def test_a_factor_has_two_significant_figures_and_beyond_a_million_a_power_of_ten():
    from joulemeter.reports.render.wording import ratio_words

    assert ratio_words(509_303_430_332.0) == "5.1 × 10¹¹× more"
    assert ratio_words(1 / 25.0) == "25× less"
    assert ratio_words(23_884.0) == "24,000× more"  # two significant figures, as 2.4× has


def test_energy_below_one_watt_hour_has_no_kwh_beside_it():
    assert formatting.energy_with_kwh(3599.0) == formatting.energy(3599.0) == "3.60 kJ"


@pytest.mark.parametrize(
    ("duration_s", "text"),
    [(3.711e-5, "37.1 µs"), (0.0528, "52.8 ms"), (0.9996, "1.0 s"), (3.04, "3.0 s"), (125, "2 min 05 s"),
     (7380, "2 h 03 min"), (3 * 86400, "3.0 days")],
)
def test_durations_switch_to_micro_and_milliseconds_minutes_hours_and_days(duration_s, text):
    assert formatting.duration(duration_s) == text


@pytest.mark.parametrize(("power_w", "text"), [(None, "—"), (61.04, "61.0 W"), (1520.0, "1.52 kW"), (3.29e6, "3.29 MW")])
def test_power_switches_to_kilowatts_and_megawatts(power_w, text):
    assert formatting.power(power_w) == text


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [("throughput_per_s", 3.8e6, "3,800,000/s"), ("latency_p50_s", 3.7115e-05, "37.1 µs"),
     ("size_on_disk_bytes", 44_700_000, "44.7 MB"), ("parameters", 1_200_000, "1,200,000"),
     ("parameters", 182_016.0, "182,016"), ("accuracy", 0.96389, "96.4 %"), ("other_cpu_load", 0.004963, "0.496 %"),
     ("energy_per_1000_inferences_j", 0.01129, "11.3 mJ"), ("trial_energy_spread", 1.104, "1.10×"),
     ("inferences", 404_600.0, "404,600"), ("dtype", "float32", "float32"), ("compiled", True, "yes"),
     ("other_cpu_load_trials", [0.45646288915424404, 0.209], "45.6 %, 20.9 %"),
     ("energy_per_1000_inferences_j_trials", [0.01129, 0.0131], "11.3 mJ, 13.1 mJ")],
)
def test_metadata_is_formatted_by_what_its_key_says(key, value, text):
    assert formatting.metadata_value(key, value) == text


@pytest.mark.parametrize(
    ("key", "label"),
    [("latency_p50_s", "p50 latency"), ("size_on_disk_bytes", "size on disk"), ("batch_size", "batch size"),
     ("inference_window_s", "length of the inference window"), ("budget_j", "budget")],
)
def test_a_metadata_label_names_the_figure_and_leaves_the_unit_to_the_value(key, label):
    assert formatting.metadata_label(key) == label


@pytest.mark.parametrize(("text", "max_chars", "cut"), [
    ("digits-mlp/int8", 12, "digits…/int8"),
    ("digits-mlp/pruned (making)", 15, "digits-…making)"),
    ("digits-mlp/full", 15, "digits-mlp/full"),  # fits: whole
    ("abcdef", 2, "a…"),
])
def test_shorten_middle_keeps_the_start_and_the_end_that_tells_names_apart(text, max_chars, cut):
    assert formatting.shorten_middle(text, max_chars) == cut
    assert len(cut) <= max_chars
