"""The ``odl-genprior`` command line."""
import argparse
import os
import sys
import time

__all__ = ('main', 'build_parser')


def _load_prior(prior):
    """A shipped generator by name or a run folder; an unknown name, or a
    model of another family, is named."""
    from pathlib import Path

    from odl_genprior import models

    try:
        folder = Path(prior) if Path(prior).is_dir() else None
        if folder is None:
            shipped = models.list_pretrained('generator')
            if prior not in shipped:
                raise KeyError(f'no shipped generator {prior!r}; available: '
                               f'{shipped}')
        elif models.family_of(folder).name != 'generator':
            raise KeyError(f'{prior} holds a {models.family_of(folder).name} '
                           'model, not a generator')
        return models.load(prior)
    except KeyError as err:  # neither a shipped name nor a folder
        raise ValueError(f'--prior {prior}: {err.args[0]}') from None


def _prior_operator(prior, space):
    """A shipped prior (by name) or a run folder as an ODL operator onto ``space``.

    The generator's own grid is carried to the problem's grid by ODL's
    ``Resampling`` when the two differ, so ``A * Resampling * G`` is the
    forward model.
    """
    import odl
    import torch

    from odl_genprior.bridge import TorchOperator
    from odl_genprior.generators import recipes

    model = _load_prior(prior)
    decoder = recipes.generator_of(model)
    n = model.latent_dim
    kw = {'impl': space.impl}
    if space.impl == 'pytorch':
        kw['device'] = space.device
        decoder = decoder.to(space.device)
    param = next(decoder.parameters())
    with torch.no_grad():
        shape = tuple(decoder(param.new_zeros(1, n)).shape[2:])
    grid = odl.uniform_discr(space.min_pt, space.max_pt, shape,
                             dtype=space.dtype_identifier, **kw)
    G = TorchOperator(decoder, odl.rn(n, dtype=space.dtype_identifier, **kw),
                      grid)
    if grid.shape != space.shape:
        G = odl.Resampling(grid, space, 'linear') * G
    return G


def _ellipse_prior_method(space):
    """Soft latent-space reconstruction with the shipped ellipse prior.

    ``mu`` is small because ``||z||^2`` is a plain sum while the image
    terms are ODL's integrals (cell volume ~1e-4 on a 128x128 grid): a
    larger weight pins ``z`` near 0. Adam, because ODL's BFGS stalls on this
    objective after a few steps (measured: G(z) at 19.5 dB against 22.2).
    """
    from odl_genprior.recon import LatentSoft

    method = LatentSoft(_prior_operator(DEMO_PRIOR, space), lam=0.3, mu=1e-5,
                        solver='adam', learning_rate=0.1, niter=100,
                        restarts=1)
    method.name = 'GenPrior'
    return method


#: The generative prior of the demo (a shipped model, models.pretrained).
DEMO_PRIOR = 'ellipses-vae-128'
#: The score model of dps / score-projection unless --prior names another.
SCORE_PRIOR = 'ellipses-score-64'
PROBLEMS = ('ct', 'fan-ct', 'cs', 'deblur', 'inpaint', 'denoise')


def _diffusion_method(args, space, options):
    """DPS or the projection sampler with a score model (name or run folder)."""
    from odl_genprior import recon

    prior = getattr(args, 'prior', None) or SCORE_PRIOR
    model = _load_prior(prior)
    if not hasattr(model, 'sde'):
        raise ValueError(f'{args.method} needs a score model (`odl-genprior '
                         f'train score`); {prior} is a '
                         f'{type(model).__name__}')
    size = getattr(model, 'image_size', None)
    if size is not None and tuple(space.shape) != (size, size):
        raise ValueError(f'the score model {prior} was trained on '
                         f'{size}x{size} images but the problem space has '
                         f'shape {tuple(space.shape)}; pass --size {size}')
    if space.impl == 'pytorch':
        model = model.to(space.device)
    cls = recon.METHODS[args.method].cls
    # the class's options tuned on validation, under the user's --set
    kw = dict(getattr(cls, 'TUNED', {}), **options)
    return _construct(cls, model, model.sde, options=kw)


#: The largest problem the command line builds: one image, or one data
#: array, of at most this many bytes (float32); methods hold several.
MAX_ARRAY_BYTES = 2 ** 30
#: Smallest image side the problems are defined on.
MIN_SIZE = 8


def _check_problem_size(args):
    """Refuse sizes no method can run, or that would exhaust memory,
    before anything is computed (one line, naming the options)."""
    size = args.size
    if size < MIN_SIZE:
        raise ValueError(f'--size {size}: images have at least {MIN_SIZE}x'
                         f'{MIN_SIZE} pixels')
    arrays = {'image': size * size}
    if args.problem in ('ct', 'fan-ct'):
        # detector: about sqrt(2) size pixels (fan beam: a little more)
        arrays['data'] = args.angles * (2 * size + 2)
    if args.problem == 'cs':
        arrays['matrix'] = args.measurements * size * size
    name, n = max(arrays.items(), key=lambda kv: kv[1])
    if 4 * n > MAX_ARRAY_BYTES:
        other = {'data': 'angles', 'matrix': 'measurements'}.get(name)
        given = f'--size {size}' + (f', --{other} {getattr(args, other)}'
                                    if other else '')
        raise ValueError(f'{given}: the {name} would take '
                         f'{4 * n / 2 ** 30:.1f} GiB; this command builds '
                         f'arrays of at most {MAX_ARRAY_BYTES / 2 ** 30:g} '
                         'GiB')


def _check_writable(folder, option):
    """``folder`` exists (made) and takes a file: checked before the work,
    so that a result is never computed and then lost."""
    import tempfile
    from pathlib import Path

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(f'{option} {folder}: cannot write there '
                         f'({err.strerror or type(err).__name__})') from None


def _check_out_file(path, option, suffixes):
    from pathlib import Path

    p = Path(path)
    if not str(path).strip() or p.name in ('', '.', '..') or \
            p.suffix.lower() not in suffixes or p.stem == '':
        raise ValueError(f'{option} {str(path)!r}: give a file name ending in '
                         f'{" or ".join(suffixes)}')
    if p.is_dir():
        raise ValueError(f'{option} {path}: is a folder, not a file')
    _check_writable(p.parent, option)


def _problem(args):
    from odl_genprior import problems

    common = dict(seed=args.seed, phantom=args.phantom)
    if args.problem in ('ct', 'fan-ct'):
        return problems.ct(size=args.size, num_angles=args.angles,
                           geometry='fan' if args.problem == 'fan-ct'
                           else 'parallel', noise_level=args.noise,
                           impl=args.impl, device=args.device, **common)
    if args.problem == 'cs':
        return problems.compressed_sensing(args.measurements, size=args.size,
                                           noise_std=args.noise, **common)
    make = {'deblur': problems.deblurring, 'inpaint': problems.inpainting,
            'denoise': problems.denoising}[args.problem]
    return make(size=args.size, noise_level=args.noise, impl=args.impl,
                device=args.device, **common)


def _construct(cls, *args, options):
    """``cls(*args, **options)``; an option it does not take is named."""
    import inspect

    if 'callback' in options:
        raise ValueError('--set callback: a callback is a Python function; '
                         'the command line cannot set one')
    params = inspect.signature(cls).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        names = [k for k, p in params.items()
                 if p.default is not inspect.Parameter.empty]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ValueError(f'--set {unknown[0]}: {cls.__name__} has no '
                             f'option {unknown[0]!r}; its options are '
                             f'{", ".join(names)}')
    try:
        return cls(*args, **options)
    except TypeError as err:  # a --set value of the wrong type
        raise ValueError(f'--set: {cls.__name__}: {err}') from None


def _reconstruct(args):
    import ast
    import time

    import numpy as np

    from odl_genprior import metrics, recon
    from odl_genprior.bridge import to_numpy

    options = {}
    for item in args.set or ():
        key, sep, value = item.partition('=')
        if not sep:
            raise ValueError(f'--set expects key=value, got {item!r}')
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    # --prior and --model exist only on the methods that read them
    prior = getattr(args, 'prior', None)
    model_arg = getattr(args, 'model', None)
    # the learned methods make their own problem: these options would be
    # silently ignored
    ignored = {'learned': ('problem', 'size', 'angles', 'measurements',
                           'noise', 'phantom', 'impl'),
               'learned-svd': ('problem', 'size', 'angles', 'measurements',
                               'impl')}.get(args.method, ())
    defaults = _problem_options().parse_args([])
    given = [f'--{k}' for k in ignored
             if getattr(args, k) != getattr(defaults, k)]
    if given:
        raise ValueError(
            f'{", ".join(given)}: not used by {args.method}, whose problem '
            + ('is test sample --seed of the network\'s own benchmark'
               if args.method == 'learned' else
               'is CT of the trained size and angles, with --noise, --seed '
               'and --phantom'))
    if args.method not in ('learned', 'learned-svd'):
        _check_problem_size(args)
    if args.out:
        _check_out_file(args.out, '--out', ('.npy',))
    if args.method == 'learned':
        from odl_genprior.problems.protocol import make_protocol
        from odl_genprior.recon.learned import LearnedReconstructor
        from odl_genprior.models.unrolled import load_unrolled
        if not model_arg:
            raise ValueError('learned needs --model RUN_OR_NAME (a run '
                             'folder of `odl-genprior train unrolled` or a '
                             'shipped network, e.g. dival-lpd-128)')
        model = load_unrolled(model_arg)
        # The problem is the test sample --seed of the model's own benchmark.
        bench = make_protocol(model.config.get('benchmark'))
        problem = bench.problem(args.seed, 'test')
        method = _construct(LearnedReconstructor, model, options=options)
        if args.symmetrize:
            method = recon.SymmetryAveraged(method)
    elif args.method == 'learned-svd':
        from odl_genprior import problems
        from odl_genprior.models.learned_svd import load_learned_svd
        if not model_arg:
            raise ValueError('learned-svd needs --model RUN (a run folder of '
                             '`odl-genprior train learned-svd`)')
        model = load_learned_svd(model_arg, device=args.device)
        # The problem is the trained geometry (size, angles) with --noise.
        data = _recorded_data(model_arg)
        problem = problems.ct(size=data['size'], num_angles=data['angles'],
                              noise_level=args.noise, seed=args.seed,
                              phantom=args.phantom)
        method = _construct(recon.LearnedSVD, model, options={
            'device': args.device, **options})
    elif args.method.startswith('latent'):
        if not prior:
            from odl_genprior import models
            raise ValueError(f'{args.method} needs --prior (a shipped prior: '
                             f'{", ".join(models.list_pretrained("generator"))}'
                             ', or a run folder)')
        problem = _problem(args)
        method = _construct(recon.METHODS[args.method].cls,
                            _prior_operator(prior, problem.space),
                            options=options)
    elif args.method in ('dps', 'score-projection'):
        problem = _problem(args)
        method = _diffusion_method(args, problem.space, options)
    else:
        problem = _problem(args)
        method = _construct(recon.METHODS[args.method].cls,
                            options=options)
    t0 = time.perf_counter()
    x = method.reconstruct(problem, progress=not args.quiet)
    seconds = time.perf_counter() - t0
    print(f'{problem.name}, {method!r}')
    w = max(22, len(method.name) + 2)
    print(f'{"method":<{w}}{"PSNR [dB]":>11}{"SSIM":>8}{"seconds":>10}')
    truth = problem.ground_truth
    ssim = (metrics.ssim(x, truth) if np.ndim(to_numpy(truth)) == 2
            else float('nan'))
    print(f'{method.name:<{w}}{metrics.psnr(x, truth):>11.2f}{ssim:>8.3f}'
          f'{seconds:>10.2f}')
    if args.out:
        np.save(args.out, to_numpy(x))
        print(f'reconstruction written to {args.out}')
    return 0


def _demo_problem(args):
    """The demo's forward problem and its line in the output."""
    from odl_genprior import problems
    from odl_genprior.problems.ellipse_ct import DivalEllipses

    if args.problem == 'dival':
        given = [f'--{k}' for k in ('size', 'angles', 'noise', 'seed')
                 if getattr(args, k) is not None]
        if args.impl != 'numpy' or given:
            raise ValueError(
                f'{", ".join(given) or "--impl"}: only for --problem '
                "ellipse; DIVal's ellipses have their own size (128), angles "
                '(30), noise (2.5%) and seeds (pick a test image with --index)')
        bench = DivalEllipses()
        problem = bench.problem(args.index, 'test')
        return problem, (f"DIVal's ellipses (test image {args.index}): "
                         f'128x128 over [-64, 64]^2, 30 angles, 2.5% noise, '
                         f'400x400 simulation')
    if args.index != 0:
        raise ValueError('--index: only for --problem dival (use --seed)')
    size = 128 if args.size is None else args.size
    angles = 30 if args.angles is None else args.angles
    noise = 0.05 if args.noise is None else args.noise
    seed = 0 if args.seed is None else args.seed
    problem = problems.ct(size=size, num_angles=angles, noise_level=noise,
                          seed=seed, impl=args.impl, device=args.device)
    return problem, (f'random-ellipse CT: {size}x{size}, {angles} angles, '
                     f'{noise:.0%} Gaussian noise, seed {seed}, '
                     f'impl={args.impl}')


def _demo_methods(args, problem):
    """FBP, TV, and the learned rows that fit the problem."""
    from odl_genprior.recon import FBP, TV
    from odl_genprior.recon.learned import LearnedReconstructor
    from odl_genprior.models.unrolled import pretrained_for

    methods = [FBP(), TV(alpha=args.tv_alpha, niter=args.tv_iters)]
    if args.problem == 'dival' and not args.no_learned:
        from odl_genprior.models.unrolled import PRETRAINED_DIR
        from odl_genprior.recon import SymmetryAveraged
        from odl_genprior.training import read_metrics

        # The networks shipped for this protocol, trained on its train split,
        # and the best on validation averaged over the ray transform's
        # symmetries (docs/symmetry_averaging.md).
        names = pretrained_for('dival')
        learned = {name: LearnedReconstructor.pretrained(name)
                   for name in names}
        methods += learned.values()
        val = {name: [r['val_psnr'] for r in read_metrics(
            PRETRAINED_DIR / name) if r.get('val_psnr')] for name in names}
        best = max((n for n in names if val[n]), key=lambda n: val[n][-1],
                   default=None)
        if best is not None:
            methods.append(SymmetryAveraged(learned[best]))
    if args.problem == 'ellipse' and not args.no_prior:
        methods.append(_ellipse_prior_method(problem.space))
    return methods


def _demo(args):
    # Imports here keep `odl-genprior --help` fast.
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from odl_genprior import metrics
    from odl_genprior.bridge import to_numpy

    _check_out_file(args.out, '--out', ('.png', '.pdf', '.svg', '.jpg'))
    problem, line = _demo_problem(args)
    print(line)
    methods = _demo_methods(args, problem)
    truth = problem.ground_truth
    rows, images = [], {}
    for method in methods:
        t0 = time.perf_counter()
        x = method.reconstruct(problem, progress=not args.quiet)
        seconds = time.perf_counter() - t0
        rows.append((method.name, metrics.psnr(x, truth),
                     metrics.ssim(x, truth), seconds))
        images[method.name] = to_numpy(x)
    width = max(10, *(len(r[0]) + 2 for r in rows))
    print(f'\n{"method":<{width}}{"PSNR [dB]":>11}{"SSIM":>8}{"seconds":>10}')
    for name, p, s, sec in rows:
        print(f'{name:<{width}}{p:>11.2f}{s:>8.3f}{sec:>10.2f}')
    print('(PSNR with data range max-min of the ground truth)')

    panels = [('ground truth', to_numpy(truth)), ('data (sinogram)',
                                                  to_numpy(problem.data))]
    panels += [(f'{n}: {p:.2f} dB', images[n]) for n, p, _, _ in rows]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    for ax, (title, img) in zip(axes, panels):
        is_sino = title.startswith('data')
        ax.imshow(img.T if not is_sino else img, cmap='gray', origin='lower',
                  aspect='auto' if is_sino else 'equal',
                  vmin=None if is_sino else 0, vmax=None if is_sino else 1)
        ax.set_title(title.replace(" (", "\n("), fontsize=9)  # long names
        ax.axis('off')
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f'figure written to {args.out}')
    return 0


def _train_limited_angle(args, command):
    from odl_genprior.models.limited_angle import (build_limited_angle,
                                                   train_limited_angle)

    if args.scheme not in ('lpd', 'lfb'):
        print(f'odl-genprior train: error: --protocol htc2022 trains lpd or '
              f'lfb, not {args.scheme!r}', file=sys.stderr)
        return 2
    # The challenge fixes geometry, angles, noise and data; these options
    # would be silently ignored.
    given = [f'--{name.replace("_", "-")}' for name, unset in (
        ('angles', None), ('noise', None), ('geometry', None),
        ('data_seed', None), ('start', None), ('init', None),
        ('init_resize', False), ('data_workers', 1))
        if getattr(args, name) != unset]
    if given:
        print(f'odl-genprior train: error: --protocol htc2022 has its own '
              f'geometry, noise and data; drop {", ".join(given)}',
              file=sys.stderr)
        return 2
    config = {'scheme': args.scheme, 'group': args.group,
              'htc2022': {'size': args.size or 128,
                          'angle_step': args.angle_step}}
    if args.width is not None:
        config['hidden_channels'] = args.width
    if args.iterations is not None:
        config['n_iter'] = args.iterations
    try:
        build_limited_angle(config)
    except (ValueError, TypeError) as err:
        print(f'odl-genprior train: error: {err}', file=sys.stderr)
        return 2
    train_limited_angle(config, args.out, n_train=args.n_train,
                        n_val=args.n_val, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr,
                        seed=args.seed, progress=not args.quiet,
                        command=command,
                        checkpoint_every=args.checkpoint_every,
                        autocast=args.autocast, steps=args.steps,
                        warmup=args.warmup, compile=args.compile,
                        device=args.device)
    print(f'weights, config.json and metrics.csv are in {args.out}; '
          f'reconstruct with: odl-genprior htc2022 FILE.mat --method '
          f'{args.out}')
    return 0


def _htc2022(args):
    """Reconstruct and segment one file in the HTC2022 challenge's format."""
    from pathlib import Path

    import numpy as np

    from odl_genprior.problems import htc2022
    from odl_genprior.recon.limited_angle import (LimitedAngleCT,
                                                  htc2022_baselines)
    from odl_genprior.models.limited_angle import (
        DEFAULT_NETWORK, LIMITED_ANGLE_GEOMETRY, list_pretrained_limited_angle)

    path = Path(args.file)
    if path.suffix.lower() != '.mat':
        raise ValueError(f'{path} is not a .mat file (the challenge\'s '
                         'format: a struct with sinogram and parameters)')
    # everything that can be checked is checked before the work
    truth = (htc2022.read_segmentation(args.reference) if args.reference
             else None)
    shipped = list_pretrained_limited_angle()
    baselines = htc2022_baselines()
    if args.method is not None and args.method not in baselines and (
            args.method not in shipped and not Path(args.method).is_dir()):
        raise ValueError(f'--method {args.method}: not fbp, tv, a shipped '
                         f'network ({", ".join(shipped)}) or a run folder')
    sino, angles, geometry = htc2022.read_challenge_file(path)
    out = Path(args.out)
    _check_writable(out, '--out')
    step = float(angles[1] - angles[0]) if angles.size > 1 else 1.0
    problem = htc2022.measured_problem(
        sino, angles, geometry, size=args.size,
        angle_step=max(1, int(round(1.0 / step))), det_binning=4,
        name=path.stem, info={'path': str(path), **geometry})
    # The networks see at most 90 degrees; with more data TV uses it all
    # (MCC 0.99 on the full teaching files).
    span = float(angles[-1] - angles[0])
    trained = (LIMITED_ANGLE_GEOMETRY['min_range'],
               LIMITED_ANGLE_GEOMETRY['max_range'])
    name = args.method or (
        DEFAULT_NETWORK if DEFAULT_NETWORK in shipped
        and trained[0] <= span <= trained[1] else 'tv')
    if args.method is None and span < trained[0]:
        print(f'{path.name}: {span:g} degrees of data, less than the '
              f'{trained[0]:g}-{trained[1]:g} degrees the shipped network '
              'was trained for: using TV')
    if name in baselines:
        method = baselines[name]
    else:
        method = LimitedAngleCT(name,
                                allow_other_range=args.allow_other_range)
    x = method(problem, progress=not args.quiet).asarray()
    seg = htc2022.segment(htc2022.resample(x, (512, 512)),
                          getattr(method, 'threshold', None))
    np.save(out / f'{path.stem}_recon.npy', x)
    from PIL import Image
    # The organisers' arrays lie like ours: row i of the PNG is x[i].
    Image.fromarray((255 * seg).astype(np.uint8)).save(out / f'{path.stem}.png')
    print(f'{path.name}: {angles.size} angles over {span:g} deg from '
          f'{angles[0]:g}; {method.name}; wrote {out / (path.stem + ".png")} '
          f'(512x512 segmentation) and {path.stem}_recon.npy')
    if truth is not None:
        print(f'MCC against {Path(args.reference).name}: '
              f'{htc2022.mcc(seg, truth):.4f}')
    return 0


#: ``train unrolled`` options -> the protocol fields they set (a protocol
#: without the field refuses the option; unset options keep its defaults).
PROTOCOL_OPTIONS = {'size': 'size', 'angles': 'num_angles',
                    'noise': 'noise_level', 'geometry': 'geometry',
                    'data_seed': 'seed'}


def _train_unrolled(args, command):
    import dataclasses

    from odl_genprior.models.unrolled import build_unrolled, train_unrolled
    from odl_genprior.problems.protocol import PROTOCOLS

    cls = PROTOCOLS[args.protocol]
    if cls.family == 'limited_angle':
        return _train_limited_angle(args, command)
    fields = {f.name for f in dataclasses.fields(cls)}
    # unset options are None: the protocol's own defaults apply
    given = {opt: getattr(args, opt) for opt in PROTOCOL_OPTIONS
             if getattr(args, opt) is not None}
    foreign = [f'--{opt.replace("_", "-")}' for opt in given
               if PROTOCOL_OPTIONS[opt] not in fields]
    if foreign:
        print(f'odl-genprior train: error: --protocol {args.protocol} has '
              f'no {", ".join(foreign)} (its fields: '
              f'{", ".join(sorted(fields - {"protocol"}))}); drop them',
              file=sys.stderr)
        return 2
    benchmark = {PROTOCOL_OPTIONS[opt]: v for opt, v in given.items()}
    # 'ellipse' without a protocol field is the configs' default: unnamed
    if 'protocol' in fields or args.protocol != 'ellipse':
        benchmark['protocol'] = args.protocol
    config = {'scheme': args.scheme, 'group': args.group,
              'benchmark': benchmark}
    if args.width is not None:
        config['hidden_channels'] = args.width
    if args.iterations is not None:
        config['n_iter'] = args.iterations
    if args.start is not None:
        config['start'] = args.start
    try:
        build_unrolled(config)  # wrong sizes: an error, not a traceback
    except (ValueError, TypeError) as err:
        print(f'odl-genprior train: error: {err}', file=sys.stderr)
        return 2
    train_unrolled(config, args.out, n_train=args.n_train, n_val=args.n_val,
                   epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                   seed=args.seed, progress=not args.quiet,
                   command=command, checkpoint_every=args.checkpoint_every,
                   init=args.init, init_resize=args.init_resize,
                   autocast=args.autocast, steps=args.steps,
                   warmup=args.warmup, compile=args.compile,
                   device=args.device, data_workers=args.data_workers)
    print(f'weights, config.json and metrics.csv are in {args.out}; '
          f'reconstruct with: odl-genprior reconstruct learned --model '
          f'{args.out}')
    return 0


def _recorded_data(run_dir):
    """The ``data`` entry that `_train_learned_svd` recorded in a run."""
    from odl_genprior.training import read_run_config

    data = read_run_config(run_dir, 'data',
                           'odl-genprior train learned-svd')['data']
    if not {'size', 'angles'} <= set(data):
        raise ValueError(f'{run_dir} records no training geometry (size, '
                         'angles): not made by `odl-genprior train '
                         'learned-svd`')
    return data


def _train_learned_svd(args, command):
    from odl_genprior.models.learned_svd import fit_learned_svd

    if args.dataset == 'mnist' and args.size not in (None, 28):
        print('odl-genprior train: error: MNIST digits are 28x28; drop '
              '--size', file=sys.stderr)
        return 2
    config = {'dataset': args.dataset, 'size': args.size, 'angles':
              args.angles, 'noise_level': args.noise,
              'latent_dim': args.latent_dim, 'hidden': list(args.hidden)}
    fit_learned_svd(config, args.out, n_train=args.n_train, n_val=args.n_val,
                    epochs=args.epochs, batch_size=args.batch_size,
                    lr=args.lr, seed=args.seed, data_dir=args.data_dir,
                    progress=not args.quiet,
                    checkpoint_every=args.checkpoint_every, command=command)
    print(f'weights, config.json and metrics.csv are in {args.out}; '
          f'reconstruct with: odl-genprior reconstruct learned-svd --model '
          f'{args.out}')
    return 0


def _recipe(args):
    """The recipe of ``train KIND`` (vae, ae, gan, cgnn, score) from the
    options; a ValueError names an option that does not fit."""
    from odl_genprior.generators import recipes
    if args.kind == 'score':
        from odl_genprior.diffusion.score_recipe import recipe_from_arguments
        return recipe_from_arguments(args)

    def option(name):
        # Not every kind has every option (gan: no --arch, --hidden,
        # --beta, --modes; ae: no --beta); absent means unset.
        return getattr(args, name, None)

    images = args.dataset != 'signals'
    if args.dataset == 'mnist' and args.size not in (None, 28):
        raise ValueError(f'--size {args.size}: MNIST images are 28x28 '
                         '(--size is for ellipses and signals)')
    if images:
        # The image recipe keeps exactly its old keys (config.json of older
        # runs must still match when they resume).
        recipe = {'kind': args.kind, 'dataset': args.dataset,
                  'latent_dim': args.latent_dim or 20,
                  'arch': option('arch') or 'conv',
                  'size': 28 if args.dataset == 'mnist' else args.size or 64,
                  'width': args.width or 64,
                  'hidden': option('hidden') or list(MLP_HIDDEN)}
        if option('beta') is not None:
            recipe['beta'] = args.beta
        return recipe
    # Unset options are filled by recipes.SIGNAL_DEFAULTS/CGNN_DEFAULTS.
    recipe = {'kind': args.kind, 'dataset': 'signals',
              'latent_dim': args.latent_dim, 'arch': option('arch'),
              'size': args.size, 'width': args.width,
              'modes': option('modes'), 'beta': option('beta')}
    if option('arch') == 'mlp':
        recipe['hidden'] = args.hidden
    if args.kind == 'cgnn':
        recipe.update(levels=args.levels, channels=args.channels,
                      wavelet=args.wavelet, boundary=args.boundary)
    return recipes.complete_recipe(recipe)


def _resume_error(args):
    """The one-line error of ``--resume``/``--no-resume`` for ``--out``, or
    None. Checked here, once for every kind, so that the trainers can always
    be called with ``resume=True``: continue a run, or start one."""
    from pathlib import Path

    from odl_genprior.training import CONFIG

    held = (Path(args.out) / CONFIG).is_file()
    if args.resume and not held:
        return f'--resume: no run to continue in {args.out}'
    if args.no_resume and held:
        # Refuse, never delete: the folder may hold weeks of training.
        return (f'--no-resume: {args.out} already holds a run ({CONFIG}); '
                'choose another --out or remove it')
    return None


def _train(args):
    import shlex

    from odl_genprior.generators import recipes

    error = _resume_error(args)
    if error:
        print(f'odl-genprior train: error: {error}', file=sys.stderr)
        return 2
    command = 'odl-genprior ' + ' '.join(shlex.quote(a) for a in args.argv)
    if args.kind == 'unrolled':
        return _train_unrolled(args, command)
    if args.kind == 'learned-svd':
        return _train_learned_svd(args, command)
    try:
        recipe = _recipe(args)
        recipes.build_model(recipe)  # wrong sizes: an error, not a traceback
    except (ValueError, TypeError) as err:
        print(f'odl-genprior train: error: {err}', file=sys.stderr)
        return 2
    recipes.fit(recipe, args.out, n_train=args.n_train, n_val=args.n_val,
                epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                seed=args.seed, data_dir=getattr(args, 'data_dir', None),
                progress=not args.quiet, command=command,
                checkpoint_every=args.checkpoint_every,
                log_every=25 if args.kind == 'score' else 50)
    print(f'weights, config.json and metrics.csv are in {args.out}')
    return 0


def _number(kind, minimum, strict=False):
    """An argparse type: ``kind`` (int or float), finite, ``>= minimum``
    (``> minimum`` if ``strict``); 0 must never silently mean a default."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'{text!r} is not {"an integer" if kind is int else "a number"}')
        if not (value > minimum if strict else value >= minimum) or (
                value == float('inf')):
            raise argparse.ArgumentTypeError(
                f'must be a finite number {">" if strict else ">="} '
                f'{minimum}, got {text}')
        return value
    return parse


_positive_int = _number(int, 1)
_nonnegative_int = _number(int, 0)
_nonnegative_float = _number(float, 0)
_positive_float = _number(float, 0, strict=True)


def _train_kinds():
    """``train`` kinds and their help lines, from the model registry (each
    family's ``commands``)."""
    from odl_genprior import models
    return {kind: line for family in models.FAMILIES.values()
            for kind, line in family.commands.items()}


#: Hidden widths of the MLP nets of the generator kinds.
MLP_HIDDEN = (500, 500)


class _KindParser(argparse.ArgumentParser):
    """The parser of one ``odl-genprior train KIND`` (or ``reconstruct
    METHOD``).

    Its errors are one line (``odl-genprior train: error: ...``, exit code
    2), and an option it does not have is its own error, naming the kinds
    that have it: argparse would hand it up to the top parser, whose message
    names no kind.

    Parameters
    ----------
    kind : str
        The kind this parser trains (the method it runs).
    siblings : dict
        Parser of every kind by name (filled as they are made).
    command : str
        The command of the kinds, ``'train'`` or ``'reconstruct'``.
    noun : str
        What a kind is called in the messages, ``'kind'`` or ``'method'``.
    """

    def __init__(self, *args, kind=None, siblings=None, command='train',
                 noun='kind', **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.siblings = {} if siblings is None else siblings
        self.command = command
        self.noun = noun

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(self._foreign(extras))
        return namespace, extras

    def _foreign(self, extras):
        options = [a.split('=')[0] for a in extras if a.startswith('-')]
        if not options:
            return f'unrecognized arguments: {" ".join(extras)}'
        others = [k for k, p in self.siblings.items() if k != self.kind
                  and options[0] in p._option_string_actions]
        where = f' (an option of {", ".join(others)})' if others else ''
        return (f"{options[0]} is not an option of {self.noun} "
                f"'{self.kind}'{where}; see odl-genprior {self.command} "
                f'{self.kind} --help')

    def error(self, message):
        self.exit(2, f'odl-genprior {self.command}: error: {message}\n')


def _training_options(n_train, n_val, batch_size):
    """A parent parser of the options every ``train KIND`` has.

    A new one per kind, with that kind's defaults: argparse shares a
    parent's actions among its children, so a default set on one kind
    would change every kind's.
    """
    common = argparse.ArgumentParser(add_help=False)
    add = common.add_argument
    add('--out', required=True, metavar='DIR',
        help='run folder: config.json, metrics.csv, checkpoint.pt, '
             'weights.pt')
    add('--n-train', type=_positive_int, default=n_train, metavar='N',
        help='training samples (default %(default)s)')
    add('--n-val', type=_positive_int, default=n_val, metavar='N',
        help='validation samples (default %(default)s)')
    add('--epochs', type=_positive_int, default=10, metavar='N',
        help='default %(default)s; more epochs continue a finished run')
    add('--batch-size', type=_positive_int, default=batch_size,
        metavar='N', help='default %(default)s')
    add('--lr', type=_positive_float, default=1e-3,
        help='learning rate (default %(default)s)')
    add('--seed', type=_nonnegative_int, default=0, metavar='S',
        help='training seed (default 0)')
    add('--checkpoint-every', type=_positive_int, default=None,
        metavar='STEPS', help='steps between checkpoints (default: each '
                              'epoch)')
    resume = common.add_mutually_exclusive_group()
    resume.add_argument('--resume', action='store_true',
                        help='continue the run in --out; an error if there '
                             'is none (default: continue one if there, else '
                             'start)')
    resume.add_argument('--no-resume', action='store_true',
                        help='start a fresh run; an error if --out already '
                             'holds one')
    add('--quiet', action='store_true', help='no progress bar')
    return common


def _cgnn_dataset(text):
    """``--dataset`` of ``train cgnn``: signals only, with the reason."""
    if text != 'signals':
        raise argparse.ArgumentTypeError(
            f"{text!r}: kind 'cgnn' trains on 1D signals; pass --dataset "
            'signals (or leave it out)')
    return text


def _add_train_parser(sub):
    """``odl-genprior train KIND``: one sub-parser per kind, each with the
    options its trainer reads and its own defaults."""
    from odl_genprior.diffusion.score_recipe import add_sde_arguments

    tr = sub.add_parser(
        'train', help='train a generator, an unrolled CT network, a learned '
                      'SVD or a score model',
        description="Train with the package's training loop: seeded, "
                    'progress bar, metric log, checkpoints. Run the same '
                    'command again to resume an interrupted run (or to '
                    'continue a finished one with more --epochs). '
                    '`odl-genprior train KIND --help` lists the options of '
                    'one kind.')
    siblings = {}
    kinds = tr.add_subparsers(dest='kind', metavar='KIND', required=True,
                              parser_class=_KindParser, title='kinds')

    train_kinds = _train_kinds()

    def kind(name, description, n_train=10000, n_val=500, batch_size=64):
        parser = kinds.add_parser(
            name, help=train_kinds[name], description=description,
            parents=[_training_options(n_train, n_val, batch_size)],
            kind=name, siblings=siblings)
        siblings[name] = parser
        return parser.add_argument

    def mnist_dir(add):
        add('--data-dir', default=None, metavar='MNIST_DIR',
            help='MNIST IDX folder (default: $ODL_GENPRIOR_MNIST)')

    def images(add):
        # The image data of learned-svd and score.
        add('--dataset', choices=('ellipses', 'mnist'), default='ellipses')
        mnist_dir(add)
        add('--size', type=_positive_int, default=None,
            help='image side (ellipses, default 64; MNIST is 28)')

    def generator(add, name, datasets=('mnist', 'ellipses', 'signals')):
        # The options of the generator recipes (vae, ae, gan).
        signals = 'signals' in datasets
        add('--dataset', choices=datasets, default='ellipses')
        mnist_dir(add)
        add('--latent-dim', type=_positive_int, default=None,
            help='default 20' + (' (images), 15 (signals)' if signals
                                 else ''))
        if name != 'gan':  # the WGAN-GP nets are convolutional
            add('--arch', choices=('mlp', 'conv', 'conv1d'), default=None,
                help="images: 'conv' (default) or 'mlp'; signals: 'conv1d' "
                     "(default) or 'mlp'")
        add('--size', type=_positive_int, default=None,
            help='image side (ellipses, default 64; MNIST is 28)' + (
                ' or samples per signal (signals, default 4096)' if signals
                else ''))
        add('--width', type=_positive_int, default=None,
            help='channels of the conv nets (default 64' + (
                ' images, 32 signals)' if signals else ')'))
        if name != 'gan':
            add('--hidden', type=_positive_int, nargs='+',
                default=list(MLP_HIDDEN), metavar='W',
                help='hidden widths of the MLP nets (default 500 500)')
        if name == 'vae':
            add('--beta', type=_nonnegative_float, default=None,
                help='KL weight (default 1 for images, 1e-2 for signals)')
        if signals:
            add('--modes', type=_positive_int, default=None,
                help='signals: Fourier modes of the trigonometric signals '
                     '(default 2)')

    add = kind('vae', 'Train a VAE (Bernoulli likelihood on images, '
                      'Gaussian on signals).')
    generator(add, 'vae')
    add = kind('ae', 'Train an autoencoder.')
    generator(add, 'ae')
    add = kind('gan', 'Train a WGAN-GP (convolutional generator and critic) '
                      'on images.')
    generator(add, 'gan', datasets=('mnist', 'ellipses'))

    add = kind('cgnn', "A VAE whose decoder is a 1D continuous generative "
                       'network (CGNN), rendered at --size samples, on '
                       'trigonometric signals.')
    add('--dataset', type=_cgnn_dataset, default='signals',
        metavar='signals', help='the only data set of cgnn (default)')
    add('--latent-dim', type=_positive_int, default=None,
        help='default 15')
    add('--arch', choices=('conv1d', 'mlp'), default=None,
        help="the encoder: 'conv1d' (default) or 'mlp'")
    add('--size', type=_positive_int, default=None,
        help='samples per signal (default 4096)')
    add('--width', type=_positive_int, default=None,
        help='channels of the conv1d encoder (default 32)')
    add('--hidden', type=_positive_int, nargs='+', default=list(MLP_HIDDEN),
        metavar='W', help='hidden widths of the MLP encoder (--arch mlp; '
                          'default 500 500)')
    add('--beta', type=_nonnegative_float, default=None,
        help='KL weight (default 1e-2)')
    add('--modes', type=_positive_int, default=None,
        help='Fourier modes of the trigonometric signals (default 2)')
    add('--levels', type=_positive_int, nargs='+', default=None, metavar='J',
        help='scale levels j_1 < ... < j_L (default 2 3 4 5 6 7)')
    add('--channels', type=_positive_int, nargs='+', default=None,
        metavar='C', help='channels c_1 ... c_L (default 32 16 8 4 2 1)')
    add('--wavelet', default=None, help="PyWavelets name (default 'db2')")
    add('--boundary', choices=('zero', 'periodic'), default=None,
        help="boundary of the MRA (default 'zero')")

    # A CT network: few, costly samples.
    from odl_genprior.problems.protocol import PROTOCOLS
    add = kind('unrolled', 'Train a learned gradient descent / primal-dual '
                           '/ forward-backward network (ordinary or '
                           'rotation-equivariant blocks) or the certified '
                           'nonexpansive learned gradient, on one of the '
                           'registered protocols (--protocol).',
               n_train=100, n_val=10, batch_size=4)
    add('--protocol', choices=sorted(PROTOCOLS), default='ellipse',
        help='; '.join(f'{name}: {cls.summary}' for name, cls in
                       sorted(PROTOCOLS.items())) + ' (default ellipse)')
    from odl_genprior.models.unrolled import NETWORKS
    add('--scheme', choices=sorted(NETWORKS), default='lfb',
        help='the unrolled scheme: ' + ', '.join(
            f'{k} ({cls.display_name})' for k, cls in sorted(
                NETWORKS.items())) + ' (default lfb)')
    add('--group', default=None,
        help='rotation group of equivariant blocks, e.g. C4, C8, D4 '
             '(default: ordinary blocks)')
    add('--iterations', type=_positive_int, default=None,
        help='unrolled steps (default 10 lgd/lpd, 8 lfb)')
    add('--width', type=_positive_int, default=None,
        help='channels of the blocks (default 32)')
    add('--size', type=_positive_int, default=None,
        help='image side (default 128)')
    add('--angles', type=_positive_int, default=None,
        help='parallel-beam angles (default 30; not htc2022)')
    add('--noise', type=_nonnegative_float, default=None,
        help='relative Gaussian noise (default 0.05, dival 0.025; not '
             'htc2022)')
    add('--geometry', choices=('parallel', 'fan'), default=None,
        help='beam geometry (ellipse protocol; default parallel)')
    add('--data-seed', type=_nonnegative_int, default=None,
        help='seed of the benchmark splits (ellipse protocol; default 0)')
    add('--angle-step', type=_positive_float, default=1.0,
        help='htc2022: degrees between the angles of the fixed operator '
             '(default 1)')
    add('--start', choices=('zero', 'fbp'), default=None,
        help="the scheme's starting image, zeros (default, the papers) or "
             "the data's FBP (DIVal's init_fbp)")
    add('--autocast', choices=('bfloat16',), default=None,
        help='mixed-precision steps (convolutions in bfloat16, weights in '
             'float32; about 0.6x the step time on CPUs with AVX-512 BF16); '
             'may change when a run resumes')
    add('--init', default=None, metavar='RUN_OR_NAME',
        help='start from the weights of this run folder or shipped network '
             '(same scheme, architecture and benchmark): fine-tuning, or '
             'more steps after a finished schedule, in a new --out')
    add('--init-resize', action='store_true',
        help='--init may come from another grid size of the same protocol '
             '(progressive training: coarse grid first)')
    add('--steps', type=_positive_int, default=None,
        help='budget in optimizer steps (replaces --epochs; the cosine '
             'schedule ends there); may be raised to go on')
    add('--warmup', type=_nonnegative_int, default=0,
        help='steps of linear learning-rate warm-up before the cosine '
             'schedule (default 0)')
    add('--compile', action='store_true',
        help='run the learned blocks through torch.compile')
    add('--device', default='cpu',
        help="torch device of the training steps, e.g. 'cuda' (default "
             "cpu; a run may resume on another device)")
    add('--data-workers', type=_positive_int, default=1, metavar='N',
        help='processes that simulate missing training pairs (the same '
             'pairs; default 1; not htc2022)')

    add = kind('learned-svd', 'Train a learned SVD (Boink and Brune) on '
                              'pairs (image, noisy parallel-beam sinogram) '
                              'of random ellipses or MNIST digits.')
    images(add)
    add('--angles', type=_positive_int, default=30,
        help='parallel-beam angles (default %(default)s)')
    add('--noise', type=_nonnegative_float, default=0.05,
        help='relative Gaussian noise (default %(default)s)')
    add('--latent-dim', type=_positive_int, default=64,
        help='default %(default)s')
    add('--hidden', type=_positive_int, nargs='+', default=[512],
        metavar='W', help='hidden widths (default 512)')

    add = kind('score', 'Train a ScoreUNet by denoising score matching on '
                        'random ellipses or MNIST; the model keeps an '
                        'exponential moving average of its weights.')
    images(add)
    add('--channels', type=_positive_int, nargs='+', default=None,
        metavar='C', help='U-Net channels at full and half resolution '
                          '(default 32 64)')
    add_sde_arguments(siblings['score'])
    tr.set_defaults(func=_train)


def _cli_methods():
    """The methods of the registry that ``reconstruct`` runs on its problems
    (`odl_genprior.recon.METHODS`: class, help line, what it reads)."""
    from odl_genprior import recon
    return {name: e for name, e in recon.METHODS.items() if e.cli}


def _problem_options():
    """A parent parser of the options every ``reconstruct METHOD`` has.

    A new one per method, as ``_training_options`` per kind: argparse shares
    a parent's actions among its children.
    """
    common = argparse.ArgumentParser(add_help=False)
    add = common.add_argument
    add('--problem', choices=PROBLEMS, default='ct')
    add('--size', type=_positive_int, default=128)
    add('--angles', type=_positive_int, default=30)
    add('--measurements', type=_positive_int, default=200,
        help='compressed sensing: number of measurements')
    add('--noise', type=_nonnegative_float, default=0.05,
        help='relative noise level (cs: absolute std)')
    add('--phantom', default='ellipses', help="'ellipses' or 'shepp_logan'")
    add('--seed', type=_nonnegative_int, default=0)
    add('--impl', choices=('numpy', 'pytorch'), default='numpy')
    add('--device', default='cpu')
    add('--set', action='append', metavar='KEY=VALUE',
        help='method option, e.g. --set alpha=1e-3 (repeatable)')
    add('--out', default=None, help='save the result (.npy)')
    add('--quiet', action='store_true')
    return common


def _add_reconstruct_parser(sub):
    """``odl-genprior reconstruct METHOD``: one sub-parser per method, with
    the problem options and --prior / --model only where the method reads
    them."""
    rc = sub.add_parser(
        'reconstruct', help='run any reconstruction method on a problem',
        description='Build a forward problem from odl_genprior.problems, run '
                    'one reconstruction method on it (options with --set '
                    'key=value) and print PSNR, SSIM and seconds. '
                    '`odl-genprior reconstruct METHOD --help` lists the '
                    'options of one method.')
    from odl_genprior import models

    siblings = {}
    methods = rc.add_subparsers(dest='method', metavar='METHOD',
                                required=True, parser_class=_KindParser,
                                title='methods')
    shipped = {family: ', '.join(models.list_pretrained(family))
               for family in ('generator', 'unrolled')}
    for name, entry in _cli_methods().items():
        parser = methods.add_parser(
            name, help=entry.help,
            description=f'{entry.help[0].upper()}{entry.help[1:]}. The '
                        'options of the method itself are given with --set '
                        'key=value.',
            parents=[_problem_options()], kind=name, siblings=siblings,
            command='reconstruct', noun='method')
        siblings[name] = parser
        if entry.reads == 'prior' and name.startswith('latent'):
            parser.add_argument(
                '--prior', default=None,
                help=f'the generator: a shipped one ({shipped["generator"]}) '
                     'or a run folder of `odl-genprior train`')
        elif entry.reads == 'prior':
            parser.add_argument(
                '--prior', default=None,
                help='the score model: a run folder of `odl-genprior train '
                     f'score` or a shipped one (default {SCORE_PRIOR}, '
                     '64x64: pass --size 64)')
        elif name == 'learned':
            parser.add_argument(
                '--model', default=None,
                help='run folder of `odl-genprior train unrolled` or a '
                     f'shipped network ({shipped["unrolled"]}); the problem '
                     'is then test sample --seed of its benchmark')
            parser.add_argument(
                '--symmetrize', action='store_true',
                help='average the network over the symmetries of the ray '
                     'transform (quarter turns, mirrors: 8 reconstructions '
                     'in one batch; docs/symmetry_averaging.md)')
        elif name == 'learned-svd':
            parser.add_argument(
                '--model', default=None,
                help='run folder of `odl-genprior train learned-svd` (the '
                     'problem is CT of the trained size and angles, --size '
                     'and --angles are ignored)')
    rc.set_defaults(func=_reconstruct)


def build_parser():
    """The argument parser of ``odl-genprior``."""
    parser = argparse.ArgumentParser(
        prog='odl-genprior',
        description='Learned models as ODL operators: demos and tools.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    demo = sub.add_parser(
        'demo', help="sparse-view CT on DIVal's ellipses: FBP, TV and the "
                     'shipped learned networks, a table and a figure',
        description="Sparse-view CT (no download): a test image of DIVal's "
                    'ellipses (default) or of the random-ellipse problem; '
                    'runs every method, prints PSNR/SSIM/seconds and writes '
                    'a PNG.')
    demo.add_argument('--problem', choices=('dival', 'ellipse'),
                      default='dival',
                      help="'dival': DIVal's ellipses (128x128, 30 angles), "
                           'with the learned networks shipped for it; '
                           "'ellipse': the package's random-ellipse CT, "
                           'with the generative prior')
    demo.add_argument('--index', type=_nonnegative_int, default=0,
                      help='dival: test image index')
    demo.add_argument('--size', type=_positive_int, default=None,
                      help='ellipse: image size (default 128)')
    demo.add_argument('--angles', type=_positive_int, default=None,
                      help='ellipse: number of projection angles (default '
                           '30)')
    demo.add_argument('--noise', type=_nonnegative_float, default=None,
                      help='ellipse: relative Gaussian noise level (default '
                           '0.05)')
    demo.add_argument('--seed', type=_nonnegative_int, default=None,
                      help='ellipse: phantom and noise seed (default 0)')
    demo.add_argument('--impl', choices=('numpy', 'pytorch'),
                      default='numpy', help='ellipse: ODL array backend')
    demo.add_argument('--device', default='cpu',
                      help="torch device for --impl pytorch, e.g. 'cuda:0'")
    demo.add_argument('--tv-alpha', type=_nonnegative_float, default=None,
                      help="TV weight (default: TV's scale-aware default, "
                           '1e-3 (side / 2)^2)')
    demo.add_argument('--tv-iters', type=_positive_int, default=300)
    demo.add_argument('--no-learned', action='store_true',
                      help='dival: leave out the shipped learned networks')
    demo.add_argument('--no-prior', action='store_true',
                      help='ellipse: leave out the generative prior '
                           '(ellipses-vae-128, soft latent-space '
                           'reconstruction)')
    demo.add_argument('--out', default='demo.png', help='figure file')
    demo.add_argument('--quiet', action='store_true',
                      help='no progress bars')
    demo.set_defaults(func=_demo)

    _add_reconstruct_parser(sub)

    htc = sub.add_parser(
        'htc2022', help='reconstruct and segment an HTC2022 file (.mat)',
        description='Reads a sinogram in the HTC2022 challenge format (full '
                    'or limited angles, geometry from the file), '
                    'reconstructs it on a --size grid, segments it and '
                    'writes DIR/<name>_recon.npy and DIR/<name>.png (the '
                    '512x512 segmentation in the challenge orientation); '
                    'with --reference prints the MCC.')
    htc.add_argument('file', help='a .mat file in the challenge format')
    htc.add_argument('--method', default=None,
                     help="'fbp', 'tv', a shipped limited-angle network or "
                          'a run folder (default: the shipped network for '
                          'up to 90 degrees of data, TV for more)')
    htc.add_argument('--out', default='.', help='output folder (default .)')
    htc.add_argument('--reference', default=None,
                     help='reference segmentation (.mat or 512x512 .png)')
    htc.add_argument('--size', type=_positive_int, default=128,
                     help='reconstruction grid (default 128)')
    htc.add_argument('--allow-other-range', action='store_true',
                     help='run a network on data covering less than the '
                          'range it was trained for (refused otherwise)')
    htc.add_argument('--quiet', action='store_true')
    htc.set_defaults(func=_htc2022)

    _add_train_parser(sub)
    return parser


def main(argv=None):
    """Entry point of the ``odl-genprior`` console script."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if not getattr(args, 'func', None):
        parser.print_help()
        return 0
    from odl_genprior.bridge import MatrixAssemblyTooSlow, MatrixTooLarge
    from odl_genprior.training import RunInUseError

    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError,
            NotADirectoryError, RunInUseError, MatrixTooLarge,
            MatrixAssemblyTooSlow) as err:
        # Bad input (sizes, folders, a run of another configuration): the
        # message names what is wrong; a traceback would bury it.
        if os.environ.get('ODL_GENPRIOR_TRACEBACK'):
            raise
        print(f'odl-genprior {args.command}: error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
