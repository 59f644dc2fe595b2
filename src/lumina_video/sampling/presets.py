"""The released sampling presets (REFERENCE.md §3), in the official dictionary format."""

GUIDE_F24 = (20.0, (0.2, 0.0))
GUIDE_F16 = (12.0, (0.4, 0.0))
NEG_MOTION = (2.0, (0.05, 6.0))

PRESETS: dict[str, dict] = {
    "f24F96R960": dict(P="1x2", step=70, ts=24, renorm=2, cfg=GUIDE_F24, motion=6, negMotion=NEG_MOTION),
    "f24F96R960-MultiScale": dict(
        P=("2x4", (0.03, "2x2"), (0.125, "1x2")), step=70, ts=24, renorm=2, cfg=GUIDE_F24, motion=6,
        negMotion=NEG_MOTION,
    ),
    "f16F64R512": dict(P="1x2", step=70, ts=8, renorm=None, cfg=GUIDE_F16, motion=6, negMotion=NEG_MOTION),
    "f16F64R512-MultiScale": dict(
        P=("2x4", (0.075, "2x2"), (0.3, "1x2")), step=70, ts=8, renorm=None, cfg=GUIDE_F16, motion=6,
        negMotion=NEG_MOTION,
    ),
}
