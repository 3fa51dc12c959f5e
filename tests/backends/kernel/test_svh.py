import torch

from recon.backends.kernel.svh import CORNERS8, VoxelLevel, build_hierarchy, pack_keys, unpack_keys


def test_pack_roundtrip_and_order():
    ijk = torch.randint(-1000, 1000, (500, 3))
    assert torch.equal(unpack_keys(pack_keys(ijk)), ijk)
    lex = sorted(map(tuple, ijk.tolist()))
    order = torch.argsort(pack_keys(ijk))
    assert [tuple(x) for x in ijk[order].tolist()] == lex


def test_lookup_present_and_absent():
    ijk = torch.unique(torch.randint(-20, 20, (300, 3)), dim=0)
    lv = VoxelLevel.from_keys(pack_keys(ijk), 0)
    idx = lv.lookup(ijk)
    assert torch.equal(lv.coords[idx], ijk)
    assert (lv.lookup(torch.tensor([[100, 100, 100]])) == -1).all()


def test_each_point_activates_its_eight_surrounding_voxels():
    u = torch.rand(200, 3) * 20 - 10
    levels = build_hierarchy(u, 4)
    assert [lv.level for lv in levels] == [0, 1, 2, 3]
    for lv in levels:
        s = 2.0**lv.level
        lo = torch.floor(u / s - 0.5).long()
        idx = lv.lookup(lo[:, None, :] + CORNERS8[None])
        assert (idx >= 0).all()
        centres = (lv.coords[idx].double() + 0.5) * s
        assert (centres - u[:, None, :].double()).abs().max() <= s + 1e-6
    assert len(levels[0]) > len(levels[1]) > len(levels[2]) > len(levels[3])
