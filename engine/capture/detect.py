"""Finding a painting's canvas in a camera frame and straightening it.

Two steps, each cheap enough for a live preview (about 10 ms for a 1280x720 frame on one core;
``benchmarks/capture_detect.py``):

1. **The picture's outline.** Edges (Canny) of a half-size grey frame, closed into contours;
   the largest convex four-sided outline is the framed picture against the wall. Its sides
   are re-fitted as straight lines through the contour's points (``cv2.fitLine``), so a corner
   is where two lines meet, not where the polygon simplifier happened to put a vertex.
2. **The canvas inside the frame.** The outline is rectified (a homography maps the plane of
   the wall, so frame and canvas, which lie in it, become axis-aligned rectangles). Moving in
   from each side, a moulding varies *across* its width (bevels, shading) but hardly *along*
   it, while the painted canvas varies along every line. So the inner edge of the frame is where
   the spread of grey levels along a line parallel to the side rises from the frame's level to
   the canvas's. Opposite sides of a frame are equally wide; where two disagree, the narrower
   is right (a painting's plain sky can only make a side look wider, never narrower). A
   picture without a frame shows no such band and is taken whole.

The canvas corners are mapped back into frame pixels and the canvas is warped to an upright
rectangle whose aspect is that of the canvas as seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

# OpenCV's stubs type its results as arrays of any dtype, so these aliases stay unparameterised.
Frame = np.ndarray  # (H, W, 3) uint8 BGR
Corners = np.ndarray  # (4, 2) float32: top-left, top-right, bottom-right, bottom-left

# Outlines are searched at this width (about 2x faster than at 1280 and as exact once refitted).
WORK_WIDTH = 640
# An outline smaller than this fraction of the frame is not the painting the person aims at.
MIN_AREA_FRACTION = 0.04
# The rectified outline's longest side while looking for the frame's inner edge (at most
# the outline's own size, so that an edge is found to a fraction of a camera pixel).
RECTIFIED_SIDE = 640
# The frame's inner edge is searched in this outer part of each side.
MAX_FRAME_FRACTION = 0.3
# The canvas must vary along a line this many times more than the frame does.
MIN_CANVAS_CONTRAST = 2.0
# A line whose mean grey differs from the frame's by this much (for 6 lines in a row) is canvas.
MIN_SHIFT = 15.0
# The longest side of a straightened crop (pixels).
MAX_CROP_SIDE = 1024


@dataclass(frozen=True)
class Detection:
    corners: Corners  # the canvas in frame pixels
    crop: Frame  # the straightened canvas, BGR
    framed: bool  # a frame was found around the canvas (else the outline is the canvas)
    whole_frame: bool = False  # a manual capture of the whole camera frame


def order_corners(points: npt.ArrayLike) -> Corners:
    """Four points as top-left, top-right, bottom-right, bottom-left (clockwise on screen)."""
    pts = np.asarray(points, np.float32).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angles)]  # clockwise on screen (y points down), starting anywhere
    start = int(np.argmin(pts.sum(axis=1)))
    return np.roll(pts, -start, axis=0).astype(np.float32)


def _grey(frame: Frame) -> np.ndarray:
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def _edges(image: np.ndarray) -> np.ndarray:
    """Closed edge lines of an image, whatever its exposure.

    Each colour channel is searched on its own: a gilt frame on a cream wall can have the
    wall's grey level and differ only in hue, and its edges would vanish in a grey image."""
    channels = [image] if image.ndim == 2 else cv2.split(image)
    edges: np.ndarray = np.zeros(image.shape[:2], np.uint8)
    for channel in channels:
        low, high = np.percentile(channel[::4, ::4], (1, 99))  # a sample is as good, 16x faster
        if high - low < 8:  # a flat (black, covered) channel has no outlines
            continue
        stretched = cv2.convertScaleAbs(channel, alpha=255.0 / (high - low), beta=-low * 255.0 / (high - low))
        edges = cv2.bitwise_or(edges, cv2.Canny(cv2.GaussianBlur(stretched, (5, 5), 0), 40, 120))
    return cv2.dilate(edges, np.ones((3, 3), np.uint8))


def _quad_of(contour: np.ndarray) -> np.ndarray | None:
    hull = cv2.convexHull(contour)
    perimeter = cv2.arcLength(hull, True)
    for eps in (0.02, 0.035, 0.05):
        approx = cv2.approxPolyDP(hull, eps * perimeter, True)
        if len(approx) == 4 and cv2.isContourConvex(approx):
            return approx.reshape(4, 2).astype(np.float32)
    return None


def _refit(quad: Corners, points: np.ndarray) -> Corners:
    """Corners where straight lines fitted to each side's contour points meet."""
    points = points.reshape(-1, 2).astype(np.float32)
    lines = []
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        side = b - a
        length = float(np.linalg.norm(side))
        if length < 4:
            return quad
        direction = side / length
        normal = np.array([-direction[1], direction[0]], np.float32)
        rel = points - a
        along = rel @ direction / length
        across = np.abs(rel @ normal)
        near = points[(along > 0.1) & (along < 0.9) & (across < max(3.0, 0.02 * length))]
        if len(near) < 5:
            lines.append((a, direction))
            continue
        vx, vy, x0, y0 = cv2.fitLine(near, cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        lines.append((np.array([x0, y0], np.float32), np.array([vx, vy], np.float32)))
    out = []
    for i in range(4):
        (p, d), (q, e) = lines[i - 1], lines[i]
        matrix = np.array([[d[0], -e[0]], [d[1], -e[1]]], np.float64)
        if abs(np.linalg.det(matrix)) < 1e-6:
            return quad
        t = np.linalg.solve(matrix, (q - p).astype(np.float64))
        out.append(p + t[0] * d)
    refit = np.asarray(out, np.float32)
    # A refit that moved a corner far is a bad fit (a side with gaps): keep the polygon's.
    if np.max(np.linalg.norm(refit - quad, axis=1)) > 0.05 * cv2.arcLength(quad.reshape(-1, 1, 2), True):
        return quad
    return refit


def find_outline(frame: Frame) -> Corners | None:
    """The largest convex four-sided outline in the frame (frame pixels), or None."""
    h, w = frame.shape[:2]
    scale = min(1.0, WORK_WIDTH / w)
    small = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    contours, _ = cv2.findContours(_edges(small), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    area_min = MIN_AREA_FRACTION * small.shape[0] * small.shape[1]
    best: tuple[float, Corners, np.ndarray] | None = None
    for contour in contours:
        if cv2.contourArea(contour) < area_min and cv2.contourArea(cv2.convexHull(contour)) < area_min:
            continue
        quad = _quad_of(contour)
        if quad is None:
            continue
        area = float(cv2.contourArea(quad))
        if area < area_min or area > 0.97 * small.shape[0] * small.shape[1]:
            continue
        if best is None or area > best[0]:
            best = (area, order_corners(quad), contour)
    if best is None:
        return None
    corners = _refit(best[1], best[2])
    return order_corners((corners + 0.5) / scale - 0.5)


def _side_lengths(corners: Corners) -> tuple[float, float]:
    """(width, height) of a quadrilateral as the means of its opposite sides."""
    c = corners
    width = (np.linalg.norm(c[1] - c[0]) + np.linalg.norm(c[2] - c[3])) / 2
    height = (np.linalg.norm(c[3] - c[0]) + np.linalg.norm(c[2] - c[1])) / 2
    return float(width), float(height)


def _rect(width: int, height: int) -> Corners:
    return np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)


def _first_run(mask: np.ndarray, run: int = 6) -> int | None:
    """The first index where ``mask`` holds for ``run`` lines in a row. The canvas goes on;
    a bevel or a reflection on the moulding, crossed at a slant where the outline is a little
    off, stands out for two or three lines only."""
    for i in range(len(mask) - run + 1):
        if mask[i : i + run].all():
            return i
    return None


def _band_width(
    spread: np.ndarray, frame_level: float, canvas_level: float, shift: np.ndarray | None = None
) -> float | None:
    """How far from the outside the frame reaches (sub-pixel), given the spread of grey
    levels along each line and how far each line's mean grey is from the frame's (a plain
    ceiling or sky hardly varies along a line, but is far lighter or darker than the wood
    or gilt around it); None when the canvas is never reached."""
    threshold = frame_level + max(0.12 * (canvas_level - frame_level), 2.5)
    textured = _first_run(spread > threshold)
    stepped = _first_run(shift > MIN_SHIFT) if shift is not None else None
    if stepped is not None and (textured is None or stepped < textured):
        return float(stepped)
    if textured is None:
        return None
    # The edge is where the spread crosses half-way from the frame's level to the canvas's
    # level just inside it (the line that straddles the edge is half of each).
    i = textured
    inside = float(np.median(spread[i + 1 : i + 8]))
    half = (frame_level + inside) / 2
    j = i
    while j > 0 and spread[j - 1] > half:
        j -= 1
    while j < len(spread) - 1 and spread[j] < half:
        j += 1
    if j == 0:
        return 0.0
    lo, hi = float(spread[j - 1]), float(spread[j])
    return j - 1 + (half - lo) / (hi - lo) + 0.5 if hi > lo else float(j)


def _agree(a: float | None, b: float | None, skip: int) -> float | None:
    """One width for two opposite sides of a frame (equal in the rectified plane).

    A side whose search failed, or stopped at once (a carved ornament, a reflection on the
    moulding), takes the other's width; two that agree within 15 % are averaged; otherwise the
    narrower wins, because a plain stretch of painting along a side can only make that side
    look wider."""
    plausible = [w for w in (a, b) if w is not None and w > skip + 1]
    if not plausible:
        return None
    if len(plausible) == 2 and max(plausible) <= 1.15 * min(plausible):
        return sum(plausible) / 2
    return min(plausible)


def _robust_spread(values: np.ndarray, axis: int) -> np.ndarray:
    """The spread of each line as a standard deviation, but robust: the median absolute
    deviation (x 1.4826). A bevel line crossed at a slant (the outline is never exactly
    right) disturbs only the few pixels where it crosses, which the median ignores; the
    canvas varies all along the line."""
    centre = np.median(values, axis=axis, keepdims=True)
    return np.asarray(1.4826 * np.median(np.abs(values - centre), axis=axis), np.float32)


def _canvas_in(grey: np.ndarray, outline: Corners) -> tuple[Corners, bool]:
    """The canvas inside the outline (frame pixels), and whether a frame was found."""
    width, height = _side_lengths(outline)
    scale = min(RECTIFIED_SIDE, max(width, height)) / max(width, height, 1.0)
    rw, rh = max(8, round(width * scale)), max(8, round(height * scale))
    to_rect = cv2.getPerspectiveTransform(outline, _rect(rw, rh))
    warped = cv2.warpPerspective(grey, to_rect, (rw, rh), flags=cv2.INTER_LINEAR)
    flat = cv2.GaussianBlur(warped.astype(np.float32), (3, 3), 0)
    # Spread of grey levels along lines parallel to each side, over the side's middle part
    # (the corners hold the mitres of the moulding).
    x0, x1, y0, y1 = int(0.2 * rw), int(0.8 * rw), int(0.2 * rh), int(0.8 * rh)
    # Every other pixel along a line is plenty for its median, at half the cost.
    along_rows, along_cols = flat[:, x0:x1:2], flat[y0:y1:2, :]
    rows = _robust_spread(along_rows, axis=1)
    cols = _robust_spread(along_cols, axis=0)
    row_means = np.median(along_rows, axis=1)
    col_means = np.median(along_cols, axis=0)
    spreads = {"top": rows, "bottom": rows[::-1], "left": cols, "right": cols[::-1]}
    levels = {"top": row_means, "bottom": row_means[::-1], "left": col_means, "right": col_means[::-1]}
    skip = max(2, int(0.03 * min(rw, rh)))  # the outline itself blends wall and frame
    centre = np.concatenate([rows[int(0.35 * rh) : int(0.65 * rh)], cols[int(0.35 * rw) : int(0.65 * rw)]])
    canvas_level = float(np.median(centre))
    bands: dict[str, float | None] = {}
    for side, spread in spreads.items():
        reach = int(MAX_FRAME_FRACTION * len(spread))
        frame_part = slice(skip, skip + max(3, len(spread) // 25))
        frame_level = float(np.median(spread[frame_part]))
        if canvas_level < MIN_CANVAS_CONTRAST * max(frame_level, 1.0):
            return outline, False  # no band that differs from the canvas: no frame
        shift = np.abs(levels[side][skip:reach] - float(np.median(levels[side][frame_part])))
        found = _band_width(spread[skip:reach], frame_level, canvas_level, shift)
        bands[side] = skip + found if found is not None else None
    vertical = _agree(bands["top"], bands["bottom"], skip)
    horizontal = _agree(bands["left"], bands["right"], skip)
    if vertical is None or horizontal is None:
        return outline, False
    inner = np.array(
        [
            [horizontal, vertical],
            [rw - horizontal, vertical],
            [rw - horizontal, rh - vertical],
            [horizontal, rh - vertical],
        ],
        np.float32,
    )
    corners = cv2.perspectiveTransform(inner[None], np.linalg.inv(to_rect))[0]
    return order_corners(corners), True


def _intersect(lines: list[tuple[np.ndarray, np.ndarray]]) -> Corners | None:
    """Corners where consecutive lines (point, direction) meet; line i runs from corner i."""
    out = []
    for i in range(4):
        (p, d), (q, e) = lines[i - 1], lines[i]
        matrix = np.array([[d[0], -e[0]], [d[1], -e[1]]], np.float64)
        if abs(np.linalg.det(matrix)) < 1e-6:
            return None
        t = np.linalg.solve(matrix, (q - p).astype(np.float64))
        out.append(p + t[0] * d)
    return np.asarray(out, np.float32)


def _edge_offset(spread: np.ndarray) -> float | None:
    """Where a spread profile (outside → inside) rises half-way from frame to canvas."""
    quarter = max(2, len(spread) // 4)
    low, high = float(np.median(spread[:quarter])), float(np.median(spread[-quarter:]))
    if high < 2.0 * low + 2.0:
        return None  # no clear step here (the canvas is as plain as the frame)
    half = (low + high) / 2
    above = np.nonzero(spread > half)[0]
    if len(above) == 0 or above[0] == 0:
        return None
    j = int(above[0])
    lo, hi = float(spread[j - 1]), float(spread[j])
    return j - 1 + (half - lo) / (hi - lo)


# A change of mean grey level across an edge at least this large is a colour edge between
# frame and canvas (a moulding's bevel is a thin line, and is averaged away; see _step_offset).
MIN_STEP = 30.0


def _step_offset(mean: np.ndarray) -> float | None:
    """Where the mean grey level (outside → inside, samples 0.5 px apart) changes most, when it
    changes by a colour edge's worth: the means 1-4 px on either side of each point are
    compared, so a thin bevel line, bright or dark, weighs on neither side."""
    near, far = 2, 8  # samples: 1 px and 4 px
    if len(mean) < 2 * far + 1:
        return None
    cumulative = np.concatenate([[0.0], np.cumsum(mean, dtype=np.float64)])
    centres = np.arange(far, len(mean) - far)
    inside = (cumulative[centres + far + 1] - cumulative[centres + near + 1]) / (far - near)
    outside = (cumulative[centres - near] - cumulative[centres - far]) / (far - near)
    step = np.abs(inside - outside)
    strong = np.nonzero(step >= max(MIN_STEP, 0.5 * float(step.max())))[0]
    if len(strong) == 0:
        return None
    # The outermost strong change is the frame's inner edge (the painting may have stronger
    # ones just inside it); on a clean step several points share its peak: take their middle.
    run_end = strong[0]
    while run_end + 1 < len(step) and step[run_end + 1] >= step[strong[0]] * 0.5:
        run_end += 1
    run = step[strong[0] : run_end + 1]
    peak = np.nonzero(run >= run.max() - 1e-3)[0]
    return float(centres[strong[0] + int(round(float(peak.mean())))])


def _fit_side(
    a: np.ndarray, b: np.ndarray, normal: np.ndarray, along: np.ndarray, offset: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The side's line (point, direction) through the edge points found across it.

    The coarse side is already close, so the edge's offset from it is nearly the same all
    along: points more than 1.5 px from the median offset (a strong edge of the painting just
    inside the frame) are left out, and a straight line is fitted to the rest. With too few
    points left the coarse side stands."""
    direction = (b - a) / float(np.linalg.norm(b - a))
    if len(offset) < 8:
        return a, direction
    keep = np.abs(offset - np.median(offset)) <= 1.5
    if keep.sum() < max(8, len(offset) // 3):
        return a, direction
    slope, intercept = np.polyfit(along[keep], offset[keep], 1)
    start = a + intercept * normal
    end = b + (intercept + slope) * normal
    return start.astype(np.float32), ((end - start) / float(np.linalg.norm(end - start))).astype(np.float32)


def _refine_canvas(grey: np.ndarray, corners: Corners, reach_fraction: float = 0.012) -> Corners:
    """Sub-pixel canvas sides, found again in the full-size frame.

    Along each side, at points spread over its middle, the spread of grey levels along short
    lines parallel to the side is measured at offsets across it: low over the moulding, high
    over the canvas. Where it rises half-way is the edge there; a straight line is fitted
    (robustly) through those points, and the corners are where the lines meet. This undoes the
    small skew that an inexact outline leaves in the rectified picture.
    """
    diagonal = float(np.linalg.norm(corners[2] - corners[0]))
    reach = max(4.0, reach_fraction * diagonal)  # how far across the side to look, each way
    offsets = np.arange(-reach, reach + 0.25, 0.5, dtype=np.float32)
    along = np.linspace(0.12, 0.88, 24, dtype=np.float32)
    tangent_steps = np.arange(-7, 8, dtype=np.float32)
    centre = corners.mean(axis=0)
    lines: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        length = float(np.linalg.norm(b - a))
        direction = (b - a) / length
        normal = np.array([-direction[1], direction[0]], np.float32)
        if np.dot(centre - a, normal) < 0:
            normal = -normal  # pointing into the canvas
        base = a[None, :] + along[:, None] * (b - a)[None, :]  # (K, 2)
        grid = (
            base[:, None, None, :]
            + offsets[None, :, None, None] * normal
            + tangent_steps[None, None, :, None] * direction
        )  # (K, J, M, 2)
        k, j, m = grid.shape[:3]
        flat = grid.reshape(k * j, m, 2)
        values = cv2.remap(grey, flat[..., 0], flat[..., 1], cv2.INTER_LINEAR).reshape(k, j, m)
        values = values.astype(np.float32)
        spread = values.std(axis=2)
        means = values.mean(axis=2)
        found_at, found_off = [], []
        for t, row, mean in zip(along, spread, means, strict=True):
            # A clear change of colour (a plain sky against the moulding) is the edge; else
            # where the canvas's texture begins.
            offset = _step_offset(mean)
            if offset is None:
                offset = _edge_offset(row)
            if offset is not None:
                found_at.append(float(t))
                found_off.append(float(offsets[0] + offset * 0.5))
        lines.append(_fit_side(a, b, normal, np.array(found_at), np.array(found_off)))
    refined = _intersect(lines)
    if refined is None or np.max(np.linalg.norm(refined - corners, axis=1)) > 2 * reach:
        return corners
    return order_corners(refined)


def straighten(frame: Frame, corners: Corners, max_side: int = MAX_CROP_SIDE) -> Frame:
    """The quadrilateral ``corners`` of ``frame`` warped to an upright rectangle."""
    width, height = _side_lengths(corners)
    scale = min(1.0, max_side / max(width, height, 1.0))
    w, h = max(8, round(width * scale)), max(8, round(height * scale))
    matrix = cv2.getPerspectiveTransform(corners.astype(np.float32), _rect(w, h))
    out: Frame = cv2.warpPerspective(
        frame, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return out


def detect_painting(frame: Frame) -> Detection | None:
    """The painting's canvas in ``frame`` (straightened), or None when no outline is found."""
    outline = find_outline(frame)
    if outline is None:
        return None
    grey = _grey(frame)
    corners, framed = _canvas_in(grey, outline)
    # Moulding or wall, what lies outside the canvas is plainer than the canvas: the sides are
    # found again to a fraction of a pixel either way.
    # An outline straight from the wall is rougher (a shadow below the picture joins it).
    corners = _refine_canvas(grey, corners, 0.012 if framed else 0.03)
    return Detection(corners, straighten(frame, corners), framed)


def whole_frame(frame: Frame) -> Detection:
    """A manual capture: the whole camera frame, as it is."""
    h, w = frame.shape[:2]
    corners = _rect(w - 1, h - 1)
    return Detection(corners, frame.copy(), framed=False, whole_frame=True)
