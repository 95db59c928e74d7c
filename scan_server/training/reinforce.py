"""Stage 3: REINFORCE fine-tuning of the GRU policy (paper eq. 8).

Each step plays ``batch`` episodes with the stochastic policy (Gaussian, σ around the
means) and ascends Σ_t Σ_m log π(a_t^m | h_t) A_t^m averaged over episodes. The means are
recomputed in one pass over the recorded inputs (identical to those of the rollout), so DDP
sees one forward per backward. Two kinds of reward (``rewards.py``):

* per position (``voronoi``: the paper's; ``shared``; ``error``), γ = 0: each position is
  credited with its own reward; baseline ``none`` (the paper) or ``batch`` (the batch mean
  of that position's reward);
* per sub-sequence (``quality``): the headline score after each sub-sequence; the action
  choosing sub-sequence t + 1 is credited with q_T − q_t. Baseline ``halton``: the same
  return of the Halton scan on the same specimen (same start, same reconstruction; computed
  once per recording and kept), so a specimen's difficulty cancels and what is left is
  how much better or worse than Halton the policy did from that step on; ``batch``: the
  batch mean per step.

Baseline ``specimen`` (any reward): each step plays ``batch / k`` specimens ``k`` times each
(``episodes_per_specimen``) and subtracts from each episode's return the mean return of the
other k − 1 episodes on the same specimen (leave-one-out, so the baseline does not depend on
the episode's own actions). It cancels the specimen's difficulty *and* what the policy's
means already do on it, so the advantage is what the sampled deviation did — the Halton
baseline leaves the latter in, and it dominates (docs/results/reinforce).

Sampling ``vine`` (``quality`` with the ``specimen`` baseline; TRPO's "vine" estimator,
Schulman et al. 2015): every step picks one sub-sequence t at random; each specimen's k
episodes follow the policy's means up to there (the same state), branch with sampled actions
for sub-sequence t + 1 (``mirrored``: in pairs ε, −ε) and are credited with that sub-sequence's
gain q_{t+1} − q_t against the other branches' mean (γ = 0 over sub-sequences, as the paper's
per-position rewards). Sampled episodes on *different* states compare the deviation's effect
with everything else that differs between them, the sampled actions of the other steps
included; branches from one state compare only the deviation. The logged curve is then the
means' own score: each step also plays the policy's means to the end on its specimens
(``gap_to_halton``), so what rises is the policy, not the luck of its samples.
``score_iterations`` scores the branch's and the shared state's reconstructions (and the
logged curve's, Halton's too) from scratch with that many ROP iterations instead of the
in-loop ones, so the reward is what the converged reconstruction gains and cannot be raised
by positions on which five iterations happen to converge faster (the in-loop reward was:
docs/results/reinforce).

``normalise`` divides the advantages by their standard deviation over the batch after
removing their mean (the step size then does not depend on the reward's scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..contracts import Acquisition
from ..errors import ParameterError
from ..evaluation.metrics import resample_to_grid
from ..evaluation.scores import material_mask
from ..policy.model import AdaptiveModel
from ..rollout import EpisodeBatch, Episodes, halton_teacher, reconstruct_batch, rollout
from .data import TrainingData
from .rewards import material_pearson, position_rewards, quality_returns
from .run import StageState
from .settings import STEP_REWARDS, TrainSettings


def truth_on_grid(acquisition: Acquisition, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """A recording's true phase (h, w) rad over the batch's field of view and its material mask
    (h, w) bool (the evaluation's rule)."""
    if acquisition.ground_truth is None:
        raise ParameterError("the quality and error rewards need recordings with a ground truth (simulated ones)")
    truth = resample_to_grid(acquisition.ground_truth, batch.grid)[batch.region]
    return torch.as_tensor(truth), torch.as_tensor(material_mask(truth, batch.grid.pixel_size_angstrom))


def headline_scores(batch: EpisodeBatch, phases: torch.Tensor) -> torch.Tensor:
    """The ``quality`` reward's score (B, K) of phases (B, K, h, w) over the batch's field of view
    against each recording's truth (a recording repeated in the batch is resampled once)."""
    known = {id(a): truth_on_grid(a, batch) for a in batch.acquisitions}
    truths, materials = zip(*(known[id(a)] for a in batch.acquisitions))
    return material_pearson(phases, torch.stack(truths), torch.stack(materials))


def episode_rewards(batch: EpisodeBatch, positions_angstrom: torch.Tensor, final: torch.Tensor,
                    kind: str, truth: torch.Tensor | None = None) -> torch.Tensor:
    """Rewards (B, T, n) of every position of the episodes (a per-position ``kind``); ``error``
    uses ``truth`` (B, h, w) when given, else resamples each recording's."""
    b, steps, n, _ = positions_angstrom.shape
    phase = final.real[:, batch.region[0], batch.region[1]].to(torch.float64).cpu()
    if kind == "error" and truth is None:
        truth = torch.stack([truth_on_grid(a, batch)[0] for a in batch.acquisitions])
    truth = None if truth is None else truth.to(torch.float64)
    seeds = batch.positions_px(positions_angstrom.reshape(b, steps * n, 2).to(torch.float64))
    mask = torch.ones(b, steps * n, dtype=torch.bool)
    return position_rewards(phase, seeds, mask, kind, truth).reshape(b, steps, n)


def leave_one_out_mean(returns: torch.Tensor, group: int) -> torch.Tensor:
    """For returns (B, …) of B / group specimens played ``group`` times each (consecutive), the
    mean of the other episodes' returns on the same specimen, (B, …)."""
    grouped = returns.reshape(-1, group, *returns.shape[1:])
    others = (grouped.sum(dim=1, keepdim=True) - grouped) / (group - 1)
    return others.reshape(returns.shape)


def advantages(returns: torch.Tensor, baseline: str, halton_returns: torch.Tensor | None = None,
               normalise: bool = False, group: int = 1) -> torch.Tensor:
    """Advantages of returns (B, …): minus the batch mean (``batch``), the Halton scan's
    returns of the same shape on the same specimens (``halton``), the other episodes' mean on
    the same specimen (``specimen``, ``group`` episodes per specimen, consecutive) or nothing
    (``none``); then, with ``normalise``, centred and divided by their standard deviation over
    the batch."""
    if baseline == "batch":
        result = returns - returns.mean(dim=0, keepdim=True)
    elif baseline == "specimen":
        if group < 2:
            raise ValueError("the specimen baseline needs two or more episodes per specimen")
        result = returns - leave_one_out_mean(returns, group)
    elif baseline == "halton":
        if halton_returns is None:
            raise ValueError("the halton baseline needs the Halton scan's returns")
        result = returns - halton_returns
    else:
        result = returns
    if normalise and result.numel() > 1:
        result = (result - result.mean()) / result.std().clamp_min(1e-8)
    return result


def reinforce_loss(log_probs: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """−Σ log π(a) A / B for log-probabilities (B, …) and advantages of the same shape."""
    return -(log_probs * advantages.detach()).sum() / log_probs.shape[0]


@dataclass(frozen=True)
class Specimen:
    """What the rewards from the truth need of one recording on the batch's grid: the true phase
    (h, w) rad over the field of view, its material mask (h, w) and the Halton scan's scores
    after each sub-sequence (T,) (the halton baseline; with any baseline, the logged gap)."""

    truth_rad: torch.Tensor
    material: torch.Tensor
    halton_scores: torch.Tensor


class Specimens:
    """Each training recording's ``Specimen``, made on first use and kept (one Halton
    rollout per recording for the whole stage)."""

    def __init__(self, model: AdaptiveModel, settings: TrainSettings) -> None:
        self.model, self.settings = model, settings
        self.known: dict[int, Specimen] = {}

    def of(self, batch: EpisodeBatch) -> list[Specimen]:
        missing = list({id(a): a for a in batch.acquisitions if id(a) not in self.known}.values())
        if missing:
            self._add(EpisodeBatch.over(missing, batch.device))
        return [self.known[id(a)] for a in batch.acquisitions]

    def _add(self, batch: EpisodeBatch) -> None:
        truths, materials = zip(*(truth_on_grid(a, batch) for a in batch.acquisitions))
        n = self.model.settings.policy.subsequence
        seeds = [self.model.settings.policy.halton_seed] * len(truths)
        episodes = rollout(batch, self.model, self.settings.steps, seeds, iterations=self.settings.rop_iterations,
                           final_iterations=self.settings.score_iterations, teacher=halton_teacher(n, seeds),
                           keep_phases=True)
        halton = list(material_pearson(episodes.phases, torch.stack(truths), torch.stack(materials)))
        for a, truth, material, scores in zip(batch.acquisitions, truths, materials, halton):
            self.known[id(a)] = Specimen(truth, material, scores)


def specimen_scores(phases: torch.Tensor, known: list[Specimen]) -> torch.Tensor:
    """The headline score (B, K) of phases (B, K, h, w) of episodes on the given specimens."""
    return material_pearson(phases, torch.stack([s.truth_rad for s in known]), torch.stack([s.material for s in known]))


def headline_gap(final: torch.Tensor, batch: EpisodeBatch, known: list[Specimen]) -> dict:
    """The final reconstructions' (B, H, W) headline score, the Halton scan's on the same
    specimens and their difference (means over the batch), for the curve."""
    scores = specimen_scores(final.real[:, None, batch.region[0], batch.region[1]].float().cpu(), known)[:, 0]
    halton = torch.stack([s.halton_scores[-1] for s in known])
    return {"headline": float(scores.mean()), "halton_headline": float(halton.mean()),
            "gap_to_halton": float((scores - halton).mean())}


def _position_step(model: AdaptiveModel, network: torch.nn.Module, batch: EpisodeBatch, settings: TrainSettings,
                   state: StageState, specimens: Specimens | None) -> tuple[torch.Tensor, dict]:
    seeds = [model.settings.policy.halton_seed] * settings.batch
    episodes = rollout(batch, model, settings.steps, seeds, sample=True, generator=state.generator,
                       iterations=settings.rop_iterations)
    known = specimens.of(batch) if specimens is not None else None
    truth = torch.stack([s.truth_rad for s in known]) if known is not None else None
    rewards = episode_rewards(batch, episodes.positions_angstrom, episodes.final, settings.reward, truth)
    means, _ = network(episodes.inputs_positions.to(batch.device), episodes.latents.to(batch.device))
    log_probs = model.policy.log_prob(episodes.actions.to(batch.device), means)
    advantage = advantages(rewards[:, 1:].to(torch.float32), settings.baseline, normalise=settings.normalise,
                           group=settings.episodes_per_specimen)
    loss = reinforce_loss(log_probs, advantage.to(batch.device))
    metrics = {"reward": float(rewards.sum(dim=(1, 2)).mean()),
               "policy_reward": float(rewards[:, 1:].sum(dim=(1, 2)).mean())}
    if known is not None:  # a reward from the truth: the headline's gap to Halton too, for the curve
        metrics.update(headline_gap(episodes.final, batch, known))
    return loss, metrics


def _quality_step(model: AdaptiveModel, network: torch.nn.Module, batch: EpisodeBatch, settings: TrainSettings,
                  state: StageState, specimens: Specimens) -> tuple[torch.Tensor, dict]:
    seeds = [model.settings.policy.halton_seed] * settings.batch
    episodes = rollout(batch, model, settings.steps, seeds, sample=True, generator=state.generator,
                       iterations=settings.rop_iterations, keep_phases=True)
    known = specimens.of(batch)
    scores = specimen_scores(episodes.phases, known)
    halton = torch.stack([s.halton_scores for s in known])
    advantage = advantages(quality_returns(scores), settings.baseline, quality_returns(halton), settings.normalise,
                           settings.episodes_per_specimen)
    means, _ = network(episodes.inputs_positions.to(batch.device), episodes.latents.to(batch.device))
    log_probs = model.policy.log_prob(episodes.actions.to(batch.device), means)
    loss = reinforce_loss(log_probs, advantage[..., None].to(torch.float32).to(batch.device))
    metrics = {"reward": float(scores[:, -1].mean()), "halton_reward": float(halton[:, -1].mean()),
               "gap_to_halton": float((scores - halton)[:, -1].mean())}
    if settings.episodes_per_specimen > 1:  # how much the sampled deviations change the outcome
        finals = scores[:, -1].reshape(-1, settings.episodes_per_specimen)
        metrics["spread_on_specimen"] = float(finals.std(dim=1).mean())
    return loss, metrics


def _shared_state_scores(episodes: Episodes, trunks: EpisodeBatch, shared_positions: int, iterations: int,
                         known: list[Specimen]) -> torch.Tensor:
    """The score (B,) of the state the branches share (the first ``shared_positions`` patterns,
    the same in each specimen's k = B / len(trunks) consecutive episodes) reconstructed from
    scratch with ``iterations``; ``trunks`` holds each specimen once, ``known`` every episode's."""
    k = len(episodes.indices) // len(trunks.acquisitions)
    shared = episodes.indices[::k, :shared_positions]
    final = reconstruct_batch(trunks, list(shared), iterations, trunks.device)
    phases = final.real[:, None, trunks.region[0], trunks.region[1]].float().cpu()
    return specimen_scores(phases, known[::k])[:, 0].repeat_interleave(k)


def _vine_step(model: AdaptiveModel, network: torch.nn.Module, batch: EpisodeBatch, settings: TrainSettings,
               state: StageState, specimens: Specimens) -> tuple[torch.Tensor, dict]:
    k = settings.episodes_per_specimen
    branch = int(state.rng.integers(1, settings.steps))  # the action choosing sub-sequence branch + 1
    seeds = [model.settings.policy.halton_seed] * settings.batch
    episodes = rollout(batch, model, branch + 1, seeds, sample=True, generator=state.generator,
                       iterations=settings.rop_iterations, final_iterations=settings.score_iterations,
                       keep_phases=True, sample_from=branch, mirrored=settings.mirrored)
    known = specimens.of(batch)
    trunks = EpisodeBatch.over(batch.acquisitions[::k], batch.device)
    after = specimen_scores(episodes.phases[:, -1:], known)[:, 0]
    before = (specimen_scores(episodes.phases[:, -2:-1], known)[:, 0] if settings.score_iterations is None
              else _shared_state_scores(episodes, trunks, branch * model.settings.policy.subsequence,
                                         settings.score_iterations, known))
    gains = after - before
    advantage = advantages(gains, "specimen", normalise=settings.normalise, group=k)
    means, _ = network(episodes.inputs_positions.to(batch.device), episodes.latents.to(batch.device))
    log_probs = model.policy.log_prob(episodes.actions.to(batch.device), means)[:, -1]
    loss = reinforce_loss(log_probs, advantage[:, None].to(torch.float32).to(batch.device))
    policy = rollout(trunks, model, settings.steps, seeds[::k], iterations=settings.rop_iterations,
                     final_iterations=settings.score_iterations)
    metrics = {"branch": branch, "gain": float(gains.mean()),
               "spread_on_specimen": float(gains.reshape(-1, k).std(dim=1).mean()),
               **headline_gap(policy.final, trunks, known[::k])}
    return loss, metrics


def make_step(model: AdaptiveModel, network: torch.nn.Module, optimizer: torch.optim.Optimizer,
              data: TrainingData, settings: TrainSettings):  # type: ignore[no-untyped-def]
    needs_truth = settings.reward in STEP_REWARDS or settings.reward == "error"
    specimens = Specimens(model, settings) if needs_truth else None

    def step(state: StageState) -> dict:
        k = settings.episodes_per_specimen
        chosen = [a for a in data.sample(state.rng, settings.batch // k) for _ in range(k)]
        batch = EpisodeBatch.over(chosen, data.device)
        if settings.sampling == "vine":
            loss, metrics = _vine_step(model, network, batch, settings, state, specimens)  # type: ignore[arg-type]
        elif settings.reward in STEP_REWARDS:
            loss, metrics = _quality_step(model, network, batch, settings, state, specimens)  # type: ignore[arg-type]
        else:
            loss, metrics = _position_step(model, network, batch, settings, state, specimens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {**metrics, "loss": loss.item()}

    return step
