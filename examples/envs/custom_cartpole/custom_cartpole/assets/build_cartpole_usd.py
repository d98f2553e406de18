"""Generate ``cartpole.usda``, the cartpole robot shipped with this package.

Isaac Lab's built-in cartpole loads its USD file from NVIDIA's asset server, which training machines without
internet access cannot reach. This script writes an equivalent robot with OpenUSD's ``pxr`` API (``UsdGeom`` +
``UsdPhysics``) so the package carries its own asset. The prim, body and joint names match what the built-in
cartpole configuration expects:

* ``/cartpole`` (default prim, ``PhysicsArticulationRootAPI``)
* bodies ``slider`` (the track, fixed to the world by ``root_joint``), ``cart`` and ``pole``
* prismatic joint ``slider_to_cart`` (cart along the track) and revolute joint ``cart_to_pole`` (pole hinge)

Dimensions and masses follow the built-in robot (1 kg cart, 1 kg pole of 1 m with its centre of mass 0.47 m above
the hinge), except that the track is 10 m long (joint limits +/- 5 m) instead of 8 m, for the wider-track variant.
Bodies carry explicit mass and inertia and no collision shapes: the cartpole never touches anything (the scene has
no ground), so contacts would only cost simulation time.

The generated text file is committed next to this script, so users never need to run it. To regenerate it::

    /work/main/.venvs/isaaclab/bin/python examples/envs/custom_cartpole/custom_cartpole/assets/build_cartpole_usd.py

``pxr`` ships with Isaac Lab (through the ``usd-exchange`` dependency). In a Python without it,
``pip install usd-core`` provides the same module; it is needed only to run this script, never at training time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics

TRACK_LENGTH = 10.0
"""Length of the track [m]; the built-in cartpole's is 8 m."""

CART_SIZE = (0.2, 0.25, 0.2)
"""Cart box size (x, y, z) [m]."""

POLE_SIZE = (0.04, 0.06, 1.0)
"""Pole box size (x, y, z) [m]."""

POLE_HINGE_OFFSET = 0.12
"""Distance from the cart's centre to the pole hinge along x [m]; keeps the pole clear of the cart."""

POLE_COM_HEIGHT = 0.47
"""Height of the pole's centre of mass above the hinge [m]."""

CART_MASS = 1.0
"""Cart mass [kg]."""

POLE_MASS = 1.0
"""Pole mass [kg]."""

SLIDER_MASS = 1.0
"""Track mass [kg]; irrelevant to the dynamics (the track is welded to the world) but must be positive."""

DEFAULT_OUTPUT = Path(__file__).with_name("cartpole.usda")
"""Where the asset is written by default: next to this script, where the package looks for it."""


def box_inertia(mass: float, size: tuple[float, float, float]) -> Gf.Vec3f:
    """Diagonal inertia of a solid box about its centre of mass.

    Args:
        mass: Box mass [kg].
        size: Box edge lengths (x, y, z) [m].

    Returns:
        The principal moments (Ixx, Iyy, Izz) [kg m^2].
    """
    x, y, z = size
    return Gf.Vec3f(mass * (y**2 + z**2) / 12.0, mass * (x**2 + z**2) / 12.0, mass * (x**2 + y**2) / 12.0)


def add_box_visual(
    stage: Usd.Stage,
    path: Sdf.Path,
    size: tuple[float, float, float],
    color: tuple[float, float, float],
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> None:
    """Add a unit cube scaled to ``size`` as the body's visual.

    Args:
        stage: The stage to author on.
        path: Path of the cube prim (a child of the body).
        size: Box edge lengths (x, y, z) [m].
        color: Display colour (r, g, b) in [0, 1].
        offset: Box centre in the body frame [m].
    """
    cube = UsdGeom.Cube.Define(stage, path)
    cube.CreateSizeAttr(1.0)
    cube.CreateDisplayColorAttr([Gf.Vec3f(*color)])
    cube.AddTranslateOp().Set(Gf.Vec3d(*offset))
    cube.AddScaleOp().Set(Gf.Vec3f(*size))


def add_rigid_body(
    stage: Usd.Stage,
    path: Sdf.Path,
    mass: float,
    inertia: Gf.Vec3f,
    *,
    translate: tuple[float, float, float] = (0.0, 0.0, 0.0),
    center_of_mass: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Usd.Prim:
    """Define an ``Xform`` rigid body with explicit mass properties.

    Args:
        stage: The stage to author on.
        path: Path of the body prim.
        mass: Body mass [kg].
        inertia: Principal moments about the centre of mass [kg m^2].
        translate: Body origin relative to the articulation root [m].
        center_of_mass: Centre of mass in the body frame [m].

    Returns:
        The body prim.
    """
    body = UsdGeom.Xform.Define(stage, path)
    body.AddTranslateOp().Set(Gf.Vec3d(*translate))
    prim = body.GetPrim()
    UsdPhysics.RigidBodyAPI.Apply(prim)
    mass_api = UsdPhysics.MassAPI.Apply(prim)
    mass_api.CreateMassAttr(mass)
    mass_api.CreateDiagonalInertiaAttr(inertia)
    mass_api.CreateCenterOfMassAttr(Gf.Vec3f(*center_of_mass))
    mass_api.CreatePrincipalAxesAttr(Gf.Quatf(1.0, 0.0, 0.0, 0.0))
    return prim


def add_force_drive(joint: UsdPhysics.Joint, drive_type: str) -> None:
    """Give a joint a zero-gain force drive, as the built-in asset has.

    Isaac Lab's implicit actuators overwrite stiffness and damping at spawn time; the drive only has to exist so
    that every physics backend treats the joint as actuated.

    Args:
        joint: The joint to drive.
        drive_type: ``"linear"`` for prismatic joints, ``"angular"`` for revolute joints.
    """
    drive = UsdPhysics.DriveAPI.Apply(joint.GetPrim(), drive_type)
    drive.CreateTypeAttr("force")
    drive.CreateStiffnessAttr(0.0)
    drive.CreateDampingAttr(0.0)
    drive.CreateMaxForceAttr(1000.0)


def add_track(stage: Usd.Stage, root_path: Sdf.Path) -> Sdf.Path:
    """Add the track, welded to the world so the articulation has a fixed base.

    Args:
        stage: The stage to author on.
        root_path: The articulation root.

    Returns:
        The track's (slider's) path.
    """
    slider_path = root_path.AppendChild("slider")
    slider_size = (0.03, TRACK_LENGTH, 0.03)
    add_rigid_body(stage, slider_path, SLIDER_MASS, box_inertia(SLIDER_MASS, slider_size))
    add_box_visual(stage, slider_path.AppendChild("visual"), slider_size, (0.9, 0.6, 0.2))
    root_joint = UsdPhysics.FixedJoint.Define(stage, root_path.AppendChild("root_joint"))
    root_joint.CreateBody1Rel().SetTargets([slider_path])
    return slider_path


def add_cart(stage: Usd.Stage, root_path: Sdf.Path, slider_path: Sdf.Path) -> Sdf.Path:
    """Add the cart, sliding along the track (y axis), limited to the track's ends.

    Args:
        stage: The stage to author on.
        root_path: The articulation root.
        slider_path: The track's path.

    Returns:
        The cart's path.
    """
    cart_path = root_path.AppendChild("cart")
    add_rigid_body(stage, cart_path, CART_MASS, box_inertia(CART_MASS, CART_SIZE))
    add_box_visual(stage, cart_path.AppendChild("visual"), CART_SIZE, (0.3, 0.5, 0.7))
    slider_to_cart = UsdPhysics.PrismaticJoint.Define(stage, slider_path.AppendChild("slider_to_cart"))
    slider_to_cart.CreateBody0Rel().SetTargets([slider_path])
    slider_to_cart.CreateBody1Rel().SetTargets([cart_path])
    slider_to_cart.CreateAxisAttr(UsdPhysics.Tokens.y)
    slider_to_cart.CreateLocalPos0Attr(Gf.Vec3f(0.0, 0.0, 0.0))
    slider_to_cart.CreateLocalPos1Attr(Gf.Vec3f(0.0, 0.0, 0.0))
    slider_to_cart.CreateLowerLimitAttr(-TRACK_LENGTH / 2.0)
    slider_to_cart.CreateUpperLimitAttr(TRACK_LENGTH / 2.0)
    add_force_drive(slider_to_cart, "linear")
    return cart_path


def add_pole(stage: Usd.Stage, root_path: Sdf.Path, cart_path: Sdf.Path) -> None:
    """Add the pole, hinged on the cart's side, swinging in the y-z plane (about x); no angle limits.

    Args:
        stage: The stage to author on.
        root_path: The articulation root.
        cart_path: The cart's path.
    """
    pole_path = root_path.AppendChild("pole")
    pole_inertia = box_inertia(POLE_MASS, POLE_SIZE)
    add_rigid_body(
        stage,
        pole_path,
        POLE_MASS,
        pole_inertia,
        translate=(POLE_HINGE_OFFSET, 0.0, 0.0),
        center_of_mass=(0.0, 0.0, POLE_COM_HEIGHT),
    )
    # The pole rises from the hinge (the body origin), so its box is centred at the centre of mass.
    pole_offset = (0.0, 0.0, POLE_COM_HEIGHT)
    add_box_visual(stage, pole_path.AppendChild("visual"), POLE_SIZE, (0.12, 0.14, 0.3), offset=pole_offset)
    cart_to_pole = UsdPhysics.RevoluteJoint.Define(stage, cart_path.AppendChild("cart_to_pole"))
    cart_to_pole.CreateBody0Rel().SetTargets([cart_path])
    cart_to_pole.CreateBody1Rel().SetTargets([pole_path])
    cart_to_pole.CreateAxisAttr(UsdPhysics.Tokens.x)
    cart_to_pole.CreateLocalPos0Attr(Gf.Vec3f(POLE_HINGE_OFFSET, 0.0, 0.0))
    cart_to_pole.CreateLocalPos1Attr(Gf.Vec3f(0.0, 0.0, 0.0))
    add_force_drive(cart_to_pole, "angular")


def build_stage(output: Path) -> Usd.Stage:
    """Author the cartpole stage and save it to ``output``.

    Args:
        output: Destination ``.usda`` file.

    Returns:
        The saved stage.
    """
    stage = Usd.Stage.CreateNew(str(output))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdPhysics.SetStageKilogramsPerUnit(stage, 1.0)

    root_path = Sdf.Path("/cartpole")
    root = UsdGeom.Xform.Define(stage, root_path).GetPrim()
    stage.SetDefaultPrim(root)
    UsdPhysics.ArticulationRootAPI.Apply(root)

    slider_path = add_track(stage, root_path)
    cart_path = add_cart(stage, root_path, slider_path)
    add_pole(stage, root_path, cart_path)

    stage.GetRootLayer().documentation = "Cartpole for the isaaclab-custom-cartpole example; see build_cartpole_usd.py."
    stage.GetRootLayer().Save()
    return stage


def main() -> None:
    """Parse the command line and write the asset."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="destination .usda file")
    args = parser.parse_args()
    build_stage(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
