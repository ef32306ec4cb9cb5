"""variant: authors computes the HMKD authors' arithmetic (method spec "The authors' arithmetic, exactly"), point
by point against hand computations on tiny models; variant: project keeps the project's."""
import pytest
import torch
import torch.nn.functional as F

from hmkd.losses.distill import global_context_direct
from hmkd.losses.distill.gla import PatchRelation
from hmkd.models.output import SegOutput, Tap


def test_authors_gla_sum_is_batch_times_tokens_squared_times_the_mean(tiny_models, make_criterion, run_pair):
    student, teacher = tiny_models["deeplab"], tiny_models["segformer"]
    authors = make_criterion({"gla": {"variant": "authors", "patch_size": 4}}, student, teacher)
    mean = make_criterion({"gla": {"variant": "authors", "patch_size": 4, "reduction": "mean"}}, student, teacher)
    mean.load_state_dict(authors.state_dict())
    student_out, labels, teacher_out = run_pair(student, teacher, 3, (72, 100), criterion=authors)
    # stage-1 map 18x25, patch 4, edges dropped: 4 x 6 = 24 tokens
    with torch.no_grad():
        relation = authors.terms["gla"].student_relation(student_out.features[0])
        ratio = authors(student_out, labels, teacher_out)["gla"] / mean(student_out, labels, teacher_out)["gla"]
    assert relation.shape == (3, 24, 24)
    assert ratio.item() == pytest.approx(3 * 24 * 24, rel=1e-4)


@pytest.mark.parametrize("edges,grid", [("drop", (11, 15)), ("pad", (12, 15))])
def test_token_count_at_camvids_stage_one_map(edges, grid):
    """CamVid 360x480 gives a 90x120 stage-1 map: the authors' unpadded patch conv keeps 11 x 15 patches."""
    relation = PatchRelation(4, 4, 8, edges)
    with torch.no_grad():
        out = relation(torch.randn(1, 4, 90, 120))
    assert out.shape == (1, grid[0] * grid[1], grid[0] * grid[1])


def test_authors_edges_drop_the_leftover_rows_and_columns():
    """Changing the pixels past the last whole patch changes nothing under drop and changes the relation under pad."""
    torch.manual_seed(0)
    feat = torch.randn(2, 4, 19, 21)
    edited = feat.clone()
    edited[:, :, 16:, :] += 5.0
    edited[:, :, :, 16:] -= 5.0
    drop, pad = PatchRelation(4, 4, 8, "drop"), PatchRelation(4, 4, 8, "pad")
    with torch.no_grad():
        torch.testing.assert_close(drop(edited), drop(feat))
        assert (pad(edited) - pad(feat)).abs().max() > 1e-3


def test_authors_edges_refuse_a_map_smaller_than_one_patch():
    with pytest.raises(ValueError, match="no whole 8x8 patch.*edges: pad"):
        PatchRelation(4, 4, 8, "drop")(torch.randn(1, 4, 6, 40))


@pytest.mark.parametrize("student_name,teacher_name,student_proj,teacher_proj", [
    ("deeplab", "segformer", None, (8, 64)),       # D = 64 (the CNN student's c1): only the 8-wide teacher projects
    ("segformer", "deeplab", None, (64, 8)),       # reverse: D = 8 (the MiT student's stage 1): only the CNN projects
    ("deeplab", "deeplab", None, None),            # widths agree: no projection on either side
])
def test_authors_width_is_the_students_and_projects_only_where_it_differs(
        tiny_models, make_criterion, student_name, teacher_name, student_proj, teacher_proj):
    term = make_criterion({"gla": {"variant": "authors"}}, tiny_models[student_name],
                          tiny_models[teacher_name]).terms["gla"]
    for relation, proj in ((term.student_relation, student_proj), (term.teacher_relation, teacher_proj)):
        if proj is None:
            assert isinstance(relation.proj, torch.nn.Identity)
        else:
            assert (relation.proj.in_channels, relation.proj.out_channels) == proj
    assert term.student_relation.patch_embed.out_channels == tiny_models[student_name].feature_info[0].channels


def test_authors_taps_reach_the_terms(tiny_models, make_criterion):
    """GLA reads stage 1's second-to-last attention entry, HFA stage 3's mean, on the transformer side only."""
    criterion = make_criterion({"gla": {"variant": "authors"}, "hfa": {"variant": "authors"}},
                               tiny_models["deeplab"], tiny_models["segformer"])
    assert criterion.terms["gla"].taps == {"student": Tap(0, "output"), "teacher": Tap(0, "attn_second_last")}
    assert criterion.terms["hfa"].taps == {"student": Tap(2, "output"), "teacher": Tap(2, "attn_mean")}
    assert set(criterion.taps("teacher")) == {Tap(0, "attn_second_last"), Tap(2, "attn_mean")}
    assert criterion.taps("student") == ()
    reverse = make_criterion({"gla": {"variant": "authors"}, "hfa": {"variant": "authors"}},
                             tiny_models["segformer"], tiny_models["deeplab"])
    assert set(reverse.taps("student")) == {Tap(0, "attn_second_last"), Tap(2, "attn_mean")}
    assert make_criterion({"gla": {}, "hfa": {}}, tiny_models["deeplab"], tiny_models["segformer"]).taps("teacher") == ()


def test_authors_gla_reads_the_attention_entry_not_the_stage_output(tiny_models, make_criterion, run_pair):
    student, teacher = tiny_models["deeplab"], tiny_models["segformer"]
    criterion = make_criterion({"gla": {"variant": "authors", "patch_size": 2}}, student, teacher)
    student_out, labels, teacher_out = run_pair(student, teacher, 2, (64, 64), criterion=criterion)
    term = criterion.terms["gla"]
    entry = teacher_out.taps[Tap(0, "attn_second_last")]
    assert not torch.equal(entry, teacher_out.features[0])
    with torch.no_grad():
        loss = term(student_out, labels, teacher_out)
        expected = ((term.student_relation(student_out.features[0])
                     - term.teacher_relation(F.interpolate(entry, size=student_out.features[0].shape[2:],
                                                           mode="bilinear", align_corners=False))) ** 2).sum()
    torch.testing.assert_close(loss, expected)


def test_authors_zero_offset_warp_is_not_the_identity_and_the_projects_is(tiny_models, make_criterion):
    """A fresh term warps with a zero offset: under the authors' grid_sample default that already moves the map."""
    torch.manual_seed(0)
    student, teacher = tiny_models["deeplab"], tiny_models["segformer"]
    feat_s = torch.randn(2, student.feature_info[2].channels, 6, 7)
    feat_t = torch.randn(2, teacher.feature_info[2].channels, 6, 7)
    dummy = [torch.zeros(1)] * 2
    student_out = SegOutput(torch.zeros(1), dummy + [feat_s, torch.zeros(1)])
    teacher_out = SegOutput(torch.zeros(1), dummy + [feat_t, torch.zeros(1)])
    for variant, identity in (("project", True), ("authors", False)):
        term = make_criterion({"hfa": {"variant": variant, "tap": "output"}}, student, teacher).terms["hfa"]
        term.eval()
        with torch.no_grad():
            s_ref = term.student_rrb(global_context_direct(feat_s))
            t_ref = term.teacher_rrb(term.teacher_proj(feat_t))
            assert term.offset_head(s_ref * t_ref).abs().max() == 0
            loss = term(student_out, None, teacher_out)
        unwarped = F.mse_loss(t_ref, s_ref)
        assert (abs(loss.item() - unwarped.item()) < 1e-5 * unwarped.item()) is identity, variant


def test_authors_offset_conv_has_no_bias_and_branch_convs_do(tiny_models, make_criterion):
    student, teacher = tiny_models["deeplab"], tiny_models["segformer"]
    authors = make_criterion({"hfa": {"variant": "authors"}}, student, teacher).terms["hfa"].offset_head
    project = make_criterion({"hfa": {}}, student, teacher).terms["hfa"].offset_head
    assert authors.offset.bias is None and authors.branch_a[0].bias is not None and authors.branch_b[0].bias is not None
    assert project.offset.bias is not None and project.branch_a[0].bias is None
    assert torch.count_nonzero(authors.offset.weight) == 0


@pytest.mark.parametrize("variant", ["project", "authors"])
def test_reverse_hfa_context_position_equals_a_direct_composition(tiny_models, make_criterion, variant):
    """CNN teacher -> transformer student: the authors apply the context to the raw teacher map, then resize
    (align_corners=True) and project; the project resizes (align_corners=False), projects, then applies it."""
    torch.manual_seed(0)
    student, teacher = tiny_models["segformer"], tiny_models["deeplab"]
    term = make_criterion({"hfa": {"variant": variant, "tap": "output"}}, student, teacher).terms["hfa"]
    assert term.context_sides == ("teacher",)
    with torch.no_grad():
        term.offset_head.offset.weight.normal_(0, 0.05)
    feat_s = torch.randn(2, student.feature_info[2].channels, 5, 7)
    feat_t = torch.randn(2, teacher.feature_info[2].channels, 9, 13)
    dummy = [torch.zeros(1)] * 2
    loss = term(SegOutput(torch.zeros(1), dummy + [feat_s, torch.zeros(1)]), None,
                SegOutput(torch.zeros(1), dummy + [feat_t, torch.zeros(1)]))

    def project(t, align_corners):
        t = F.interpolate(t, size=(5, 7), mode="bilinear", align_corners=align_corners)
        return F.conv2d(t, term.teacher_proj.weight, term.teacher_proj.bias)

    with torch.no_grad():
        if variant == "authors":
            t = project(global_context_direct(feat_t), True)
        else:
            t = global_context_direct(project(feat_t, False))
        s_ref, t_ref = term.student_rrb(feat_s), term.teacher_rrb(t)
        offset = term.offset_head(s_ref * t_ref)
        assert offset.abs().max() > 0.01
        warped = F.grid_sample(t_ref, _identity_grid(offset), align_corners=variant == "project")
        expected = F.mse_loss(warped, s_ref)
    torch.testing.assert_close(loss.detach(), expected, atol=1e-6, rtol=1e-5)
    # the other position is a different loss: the option matters
    with torch.no_grad():
        other = project(global_context_direct(feat_t), True) if variant == "project" else global_context_direct(
            project(feat_t, False))
        s_ref, t_ref = term.student_rrb(feat_s), term.teacher_rrb(other)
    assert not torch.allclose(F.mse_loss(t_ref, s_ref), F.mse_loss(term.teacher_rrb(t), s_ref))


def _identity_grid(offset):
    b, _, h, w = offset.shape
    theta = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(b, 2, 3)
    grid = F.affine_grid(theta, (b, 1, h, w), align_corners=True)   # linspace(-1, 1): the authors' grid
    return grid + torch.stack([offset[:, 0] / w, offset[:, 1] / h], dim=-1)


def test_authors_hfa_trains_end_to_end_with_its_taps(tiny_models, fresh_model, make_criterion, run_pair):
    for student_name, teacher_name in (("deeplab", "segformer"), ("segformer", "deeplab")):
        student = fresh_model(student_name)
        criterion = make_criterion({"gla": {"variant": "authors", "patch_size": 2}, "hfa": {"variant": "authors"}},
                                   student, tiny_models[teacher_name])
        student_out, labels, teacher_out = run_pair(student, tiny_models[teacher_name], 2, (64, 64),
                                                    criterion=criterion)
        terms = criterion(student_out, labels, teacher_out)
        sum(terms.values()).backward()
        assert all(torch.isfinite(v) and v > 0 for v in terms.values())
        assert next(student.parameters()).grad.abs().sum() > 0


def test_an_explicit_item_overrides_its_variant(tiny_models, make_criterion):
    student, teacher = tiny_models["deeplab"], tiny_models["segformer"]
    term = make_criterion({"gla": {"variant": "authors", "reduction": "mean", "dim": 16}}, student, teacher).terms["gla"]
    assert term.reduction == "mean" and term.student_relation.patch_embed.out_channels == 16
    assert term.student_relation.edges == "drop" and term.taps["teacher"] == Tap(0, "attn_second_last")
    with pytest.raises(ValueError, match="variant"):
        make_criterion({"gla": {"variant": "paper"}}, student, teacher)
