"""Generate stand-ins for the NVIDIA assets the built-in cartpole tasks load, at their paths under the asset root.

Built-in tasks load their USD files from NVIDIA's asset server, which this project's machines (and locked-down
VPCs) cannot reach. These files are **stand-ins, not NVIDIA's assets**: the cartpole is the example package's
robot (``examples/envs/custom_cartpole``, built with OpenUSD's ``pxr``; its track is 10 m instead of 8 m) and the
ground plane is a plain 100 m square with the prims ``spawn_ground_plane`` touches (``Environment`` with its
scale, ``Environment/Geometry`` with ``primvars:st``, ``Looks/theGrid/Shader``, a collision ``Plane``). They
let ``Isaac-Cartpole`` and ``Isaac-Cartpole-Direct`` (the guide's ``Isaac-Cartpole-v0`` and
``Isaac-Cartpole-Direct-v0``) train offline. On AWS the mirror holds NVIDIA's own files
(``make mirror-assets``).

Run with the Isaac Lab environment's Python (it has ``pxr``)::

    .venvs/isaaclab/bin/python examples/asset_mirror/build_standins.py --out .local/asset-standins
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics, UsdShade

CARTPOLE = "Isaac/IsaacLab/Robots/Classic/Cartpole/cartpole.usd"
GROUND_PLANE = "Isaac/IsaacLab/Environments/Grid/default_ground_plane_checker_v1/default_ground_plane.usda"
CARTPOLE_BUILDER = (Path(__file__).resolve().parents[1] / "envs" / "custom_cartpole" / "custom_cartpole" / "assets"
                    / "build_cartpole_usd.py")
PLANE_HALF_SIZE = 50.0  # metres: spawn_ground_plane scales Environment by size / 100


def build_cartpole(output: Path) -> None:
    """The example package's cartpole (one builder for both: its module is loaded from its file)."""
    spec = importlib.util.spec_from_file_location("build_cartpole_usd", CARTPOLE_BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    module.build_stage(output)


def build_ground_plane(output: Path) -> None:
    """A flat ground plane with the prim layout of NVIDIA's default grid plane."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    stage = Usd.Stage.CreateNew(str(output))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, "/GroundPlane").GetPrim()
    stage.SetDefaultPrim(root)
    environment = UsdGeom.Xform.Define(stage, "/GroundPlane/Environment")
    environment.AddScaleOp().Set(Gf.Vec3f(1.0, 1.0, 1.0))
    h = PLANE_HALF_SIZE
    mesh = UsdGeom.Mesh.Define(stage, "/GroundPlane/Environment/Geometry")
    mesh.CreatePointsAttr([Gf.Vec3f(-h, -h, 0), Gf.Vec3f(h, -h, 0), Gf.Vec3f(h, h, 0), Gf.Vec3f(-h, h, 0)])
    mesh.CreateFaceVertexCountsAttr([4])
    mesh.CreateFaceVertexIndicesAttr([0, 1, 2, 3])
    mesh.CreateNormalsAttr([Gf.Vec3f(0, 0, 1)] * 4)
    UsdGeom.PrimvarsAPI(mesh).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray,
                                            UsdGeom.Tokens.varying).Set(
        [Gf.Vec2f(-1, -1), Gf.Vec2f(1, -1), Gf.Vec2f(1, 1), Gf.Vec2f(-1, 1)])
    material = UsdShade.Material.Define(stage, "/GroundPlane/Looks/theGrid")
    shader = UsdShade.Shader.Define(stage, "/GroundPlane/Looks/theGrid/Shader")
    shader.CreateIdAttr("UsdPreviewSurface")
    shader.CreateInput("diffuse_tint", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(0.5, 0.5, 0.5))
    material.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
    UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim()).Bind(material)
    plane = UsdGeom.Plane.Define(stage, "/GroundPlane/CollisionPlane")
    plane.CreateAxisAttr(UsdGeom.Tokens.z)
    plane.CreatePurposeAttr(UsdGeom.Tokens.guide)
    UsdPhysics.CollisionAPI.Apply(plane.GetPrim())
    stage.GetRootLayer().documentation = "Stand-in for NVIDIA's default ground plane; see build_standins.py."
    stage.GetRootLayer().Save()


def build(out: Path) -> list[Path]:
    """Write every stand-in under ``out`` (an asset root); return the files."""
    build_cartpole(out / CARTPOLE)
    build_ground_plane(out / GROUND_PLANE)
    return [out / CARTPOLE, out / GROUND_PLANE]


def main() -> None:
    """Parse the command line and write the stand-ins."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the asset root to write them under")
    for path in build(parser.parse_args().out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
