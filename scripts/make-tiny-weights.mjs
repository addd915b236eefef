#!/usr/bin/env node
// Builds weights/tiny/: random-weight stand-ins for the four models `diffsim score` uses, in the
// folder layouts of their Hugging Face repos, from the tiny fixture weights in test/fixtures:
//   sd15/        stable-diffusion-v1-5/stable-diffusion-v1-5 (diffusers layout)
//   ip-adapter/  h94/IP-Adapter (models/ip-adapter-plus_sd15.safetensors, models/image_encoder/)
//   clip/        openai/clip-vit-base-patch32 (CLIPModel)
//   dinov2/      facebook/dinov2-small
//   lpips-vgg/   timm/vgg16.tv_in1k (model.safetensors: torchvision `features.N` keys) + the LPIPS
//                v0.1 heads beside it (lpips_vgg_v0.1.safetensors)
//   lpips-alex/  torchvision AlexNet `features` + lpips_alex_v0.1.safetensors
//   vgg19/       timm/vgg19.tv_in1k (the Gram baseline's VGG19 features)
//   dit/         facebook/DiT-XL-2-512 (DiTPipeline: transformer/, vae/, scheduler/), for diffsim-dit
// Each fixture file carries its model config in its `config` metadata. Large tensors are stored as
// F16 (U-Net, VAE, IP-Adapter) to keep the folder small (the loaders convert them to f32). Needs the built package (dist/).
//
//   node scripts/make-tiny-weights.mjs [OUT_DIR]      (default weights/tiny)

import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile, encodeSafetensors, f32ArrayToF16 } from '../dist/index.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FIX = join(ROOT, 'test', 'fixtures');
const OUT = resolve(process.argv[2] ?? join(ROOT, 'weights', 'tiny'));
const MANIFESTS = join(FIX, 'manifests');

/** Copies a fixture weights file (F32 → F16 for the U-Net and VAE); returns its config metadata. */
async function weights(src, dst, { f16 = false, keep = () => true } = {}) {
  const f = await SafetensorsFile.open(join(FIX, src));
  const tensors = {};
  for (const name of f.names()) {
    if (!keep(name)) continue;
    const { shape, data } = await f.readFloat32(name);
    tensors[name] = f16 ? { dtype: 'F16', shape, data: f32ArrayToF16(data) } : { dtype: 'F32', shape, data };
  }
  const config = JSON.parse(f.metadata.config);
  await f.close();
  mkdirSync(dirname(dst), { recursive: true });
  writeFileSync(dst, encodeSafetensors(tensors, { format: 'pt' }));
  return config;
}

function json(path, value) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

const manifest = (name) => JSON.parse(readFileSync(join(MANIFESTS, name), 'utf8'));

rmSync(OUT, { recursive: true, force: true });

// Stable Diffusion 1.5, diffusers layout.
const sd = join(OUT, 'sd15');
const unet = await weights('unet-tiny/unet.safetensors', join(sd, 'unet', 'diffusion_pytorch_model.safetensors'), { f16: true });
// sample_size 8: the default image is 8 × 8 (VAE factor) = 64 px, and this U-Net's three
// downsamplings need latents that are multiples of 8.
json(join(sd, 'unet', 'config.json'), { ...unet, sample_size: 8 });
const vae = await weights('vae-encoder-tiny/vae.safetensors', join(sd, 'vae', 'diffusion_pytorch_model.safetensors'), { f16: true });
json(join(sd, 'vae', 'config.json'), { ...vae, sample_size: 64 });
const text = await weights('clip-text-tiny/text_encoder.safetensors', join(sd, 'text_encoder', 'model.safetensors'));
json(join(sd, 'text_encoder', 'config.json'), { architectures: ['CLIPTextModel'], ...text });
mkdirSync(join(sd, 'tokenizer'), { recursive: true });
for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(FIX, 'clip-text-tiny', 'tokenizer', f), join(sd, 'tokenizer', f));
json(join(sd, 'scheduler', 'scheduler_config.json'), manifest('sd15-scheduler.config.json'));
json(join(sd, 'feature_extractor', 'preprocessor_config.json'), manifest('sd15-feature-extractor.config.json'));
json(join(sd, 'model_index.json'), {
  _class_name: 'StableDiffusionPipeline',
  _diffusers_version: '0.29.2',
  feature_extractor: ['transformers', 'CLIPImageProcessor'],
  requires_safety_checker: false,
  safety_checker: [null, null],
  scheduler: ['diffusers', 'PNDMScheduler'],
  text_encoder: ['transformers', 'CLIPTextModel'],
  tokenizer: ['transformers', 'CLIPTokenizer'],
  unet: ['diffusers', 'UNet2DConditionModel'],
  vae: ['diffusers', 'AutoencoderKL'],
});

// IP-Adapter Plus with its image encoder, h94/IP-Adapter's models/ layout.
const ip = join(OUT, 'ip-adapter', 'models');
await weights('ip-adapter-plus-tiny/ip-adapter-plus_sd15.safetensors', join(ip, 'ip-adapter-plus_sd15.safetensors'), { f16: true });
const enc = await weights('clip-vision-h14-tiny/image_encoder.safetensors', join(ip, 'image_encoder', 'model.safetensors'));
json(join(ip, 'image_encoder', 'config.json'), { architectures: ['CLIPVisionModelWithProjection'], ...enc });

// CLIPModel shaped like openai/clip-vit-base-patch32.
const clip = await weights('diffsim-tiny/clip_b32_tiny.safetensors', join(OUT, 'clip', 'model.safetensors'));
json(join(OUT, 'clip', 'config.json'), { architectures: ['CLIPModel'], ...clip });
json(join(OUT, 'clip', 'preprocessor_config.json'), manifest('clip-vit-base-patch32.preprocessor.json'));

// DINOv2, facebook/dinov2-small's layout.
const dino = await weights('dinov2-tiny/dinov2.safetensors', join(OUT, 'dinov2', 'model.safetensors'));
json(join(OUT, 'dinov2', 'config.json'), { architectures: ['Dinov2Model'], ...dino });
json(join(OUT, 'dinov2', 'preprocessor_config.json'), manifest('dinov2-small.preprocessor.json'));

// LPIPS backbones with their v0.1 heads beside them, and the Gram baseline's VGG19, in timm's
// `*.tv_in1k` layout (model.safetensors with torchvision's features.N keys; no classifier).
const timmConfig = (architecture, widths) => ({ architecture, num_classes: 0, num_features: widths.at(-1), pretrained_cfg: { tag: 'tiny-random', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } });
const lv = await weights('lpips-tiny/vgg16_features.safetensors', join(OUT, 'lpips-vgg', 'model.safetensors'));
json(join(OUT, 'lpips-vgg', 'config.json'), timmConfig('vgg16', lv.chns));
await weights('lpips-tiny/lpips_vgg_v0.1.safetensors', join(OUT, 'lpips-vgg', 'lpips_vgg_v0.1.safetensors'));
const la = await weights('lpips-tiny/alexnet_features.safetensors', join(OUT, 'lpips-alex', 'model.safetensors'));
json(join(OUT, 'lpips-alex', 'config.json'), timmConfig('alexnet', la.chns));
await weights('lpips-tiny/lpips_alex_v0.1.safetensors', join(OUT, 'lpips-alex', 'lpips_alex_v0.1.safetensors'));
const v19 = await weights('vgg-gram-tiny/vgg19_features.safetensors', join(OUT, 'vgg19', 'model.safetensors'));
json(join(OUT, 'vgg19', 'config.json'), timmConfig('vgg19', v19.vgg19_cfg_E_widths));
// DiT (diffsim-dit), facebook/DiT-XL-2-512's DiTPipeline layout: the dit-tiny fixture's diffusers
// conversion (28 blocks of width 16, the per-block embedder copies of diffusers' converter), F16.
const dit = join(OUT, 'dit');
const ditFix = join(FIX, 'dit-tiny', 'diffusers');
const fixtureJson = (path) => JSON.parse(readFileSync(join(ditFix, path), 'utf8'));
await weights('dit-tiny/diffusers/transformer/diffusion_pytorch_model.safetensors', join(dit, 'transformer', 'diffusion_pytorch_model.safetensors'), { f16: true });
json(join(dit, 'transformer', 'config.json'), fixtureJson('transformer/config.json'));
await weights('dit-tiny/diffusers/vae/diffusion_pytorch_model.safetensors', join(dit, 'vae', 'diffusion_pytorch_model.safetensors'), { f16: true });
json(join(dit, 'vae', 'config.json'), fixtureJson('vae/config.json'));
json(join(dit, 'scheduler', 'scheduler_config.json'), fixtureJson('scheduler/scheduler_config.json'));
json(join(dit, 'model_index.json'), fixtureJson('model_index.json'));

console.log(`wrote ${OUT}`);
