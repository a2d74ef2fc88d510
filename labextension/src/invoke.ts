/**
 * The invoke dialog: input path, deployment, optional mini-batch size, instance count, output
 * path and `--set` overrides. Field names match the `InvokeRequest` body.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import type { BatchEndpoint, InvokeRequest } from './wire';

/** What the user typed, kept to re-open the dialog after an error. */
export interface IInvokeFormValues {
  input: string;
  input_type: '' | 'uri_folder' | 'uri_file';
  deployment_name: string;
  mini_batch_size: string;
  instance_count: string;
  output_path: string;
  set: string;
}

export const EMPTY_VALUES: IInvokeFormValues = {
  input: '',
  input_type: '',
  deployment_name: '',
  mini_batch_size: '',
  instance_count: '',
  output_path: '',
  set: ''
};

export class InvokeForm extends Widget implements Dialog.IBodyWidget<IInvokeFormValues> {
  constructor(endpoint: BatchEndpoint, values: IInvokeFormValues) {
    super({ node: document.createElement('form') });
    this.addClass('batchnb-invoke-form');
    const form = this.node as HTMLFormElement;
    form.addEventListener('submit', event => event.preventDefault());
    const current = endpoint.defaults?.deployment_name ?? null;

    this._input = textField(this.node, 
      'input',
      'Input',
      values.input,
      'file or folder (relative to the server root), azureml:<data>@latest, URL'
    );
    this._input.required = true;
    this._inputType = selectField(this.node, 
      'input_type',
      'Input type',
      [
        ['', 'Automatic (file or folder)'],
        ['uri_folder', 'uri_folder'],
        ['uri_file', 'uri_file']
      ],
      values.input_type
    );
    this._deployment = selectField(this.node, 
      'deployment_name',
      'Deployment',
      [
        ['', current ? `Default (${current})` : 'Default'],
        ...endpoint.deployments.map(d => [d, d] as [string, string])
      ],
      values.deployment_name
    );
    this._miniBatch = textField(this.node, 
      'mini_batch_size',
      'Mini-batch size',
      values.mini_batch_size,
      "the deployment's (files, or e.g. 10kb for tabular)"
    );
    this._instances = textField(this.node, 
      'instance_count',
      'Instance count',
      values.instance_count,
      "the deployment's"
    );
    this._instances.inputMode = 'numeric';
    this._output = textField(this.node, 
      'output_path',
      'Output path',
      values.output_path,
      'default: the workspace datastore'
    );
    const label = document.createElement('label');
    label.className = 'batchnb-field';
    const span = document.createElement('span');
    span.textContent = 'Overrides (--set)';
    this._set = document.createElement('textarea');
    this._set.name = 'set';
    this._set.rows = 2;
    this._set.className = 'jp-mod-styled';
    this._set.placeholder = 'one key=value per line, e.g. error_threshold=5';
    this._set.value = values.set;
    label.append(span, this._set);
    form.appendChild(label);
  }

  getValue(): IInvokeFormValues {
    return {
      input: this._input.value.trim(),
      input_type: this._inputType.value as IInvokeFormValues['input_type'],
      deployment_name: this._deployment.value,
      mini_batch_size: this._miniBatch.value.trim(),
      instance_count: this._instances.value.trim(),
      output_path: this._output.value.trim(),
      set: this._set.value
    };
  }

  private _input: HTMLInputElement;
  private _inputType: HTMLSelectElement;
  private _deployment: HTMLSelectElement;
  private _miniBatch: HTMLInputElement;
  private _instances: HTMLInputElement;
  private _output: HTMLInputElement;
  private _set: HTMLTextAreaElement;
}

/** A labelled text input, appended to `parent` (the dialogs' forms share it). */
export function textField(
  parent: HTMLElement,
  name: string,
  title: string,
  value: string,
  placeholder: string
): HTMLInputElement {
  const input = document.createElement('input');
  input.type = 'text';
  input.placeholder = placeholder;
  input.value = value;
  return labelled(parent, name, title, input);
}

/** A labelled select of `[value, text]` options, appended to `parent`; `value` if it is one, else the first. */
export function selectField(
  parent: HTMLElement,
  name: string,
  title: string,
  options: [string, string][],
  value: string
): HTMLSelectElement {
  const select = document.createElement('select');
  for (const [v, text] of options) {
    const option = document.createElement('option');
    option.value = v;
    option.textContent = text;
    select.appendChild(option);
  }
  select.value = options.some(([v]) => v === value) ? value : (options[0]?.[0] ?? '');
  return labelled(parent, name, title, select);
}

/** `control`, named `name` and styled, in a label titled `title` appended to `parent`. */
function labelled<T extends HTMLInputElement | HTMLSelectElement>(
  parent: HTMLElement,
  name: string,
  title: string,
  control: T
): T {
  const label = document.createElement('label');
  label.className = 'batchnb-field';
  const span = document.createElement('span');
  span.textContent = title;
  control.name = name;
  control.className = 'jp-mod-styled';
  label.append(span, control);
  parent.appendChild(label);
  return control;
}

/** The request body for the form's values, or an error message. */
export function toRequest(values: IInvokeFormValues): InvokeRequest | string {
  if (!values.input) {
    return 'Input is required: a file or folder path, a data asset or a URL.';
  }
  const body: InvokeRequest = { input: values.input };
  if (values.input_type) {
    body.input_type = values.input_type;
  }
  if (values.deployment_name) {
    body.deployment_name = values.deployment_name;
  }
  if (values.mini_batch_size) {
    body.mini_batch_size = /^\d+$/.test(values.mini_batch_size)
      ? Number(values.mini_batch_size)
      : values.mini_batch_size;
  }
  if (values.instance_count) {
    if (!/^\d+$/.test(values.instance_count) || Number(values.instance_count) < 1) {
      return `Instance count must be a whole number of at least 1 (got ${values.instance_count}).`;
    }
    body.instance_count = Number(values.instance_count);
  }
  if (values.output_path) {
    body.output_path = values.output_path;
  }
  const overrides = values.set
    .split('\n')
    .map(line => line.trim())
    .filter(line => line.length > 0);
  for (const line of overrides) {
    if (!line.includes('=')) {
      return `Each override is key=value (got "${line}").`;
    }
  }
  if (overrides.length > 0) {
    body.set = overrides;
  }
  return body;
}

/**
 * Ask for the invocation's parameters and submit them with `submit`; on an error (invalid form
 * or the server's 4xx) show it and re-open the dialog with what was typed.
 */
export async function invokeDialog(
  endpoint: BatchEndpoint,
  initial: IInvokeFormValues,
  submit: (body: InvokeRequest) => Promise<unknown>
): Promise<IInvokeFormValues | null> {
  let values = initial;
  for (;;) {
    const result = await showDialog<IInvokeFormValues>({
      title: `Invoke ${endpoint.name}`,
      body: new InvokeForm(endpoint, values),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Invoke' })],
      focusNodeSelector: 'input[name="input"]'
    });
    if (!result.button.accept || result.value === null) {
      return null;
    }
    values = result.value;
    const body = toRequest(values);
    try {
      if (typeof body === 'string') {
        throw new Error(body);
      }
      await submit(body);
      return values;
    } catch (error) {
      await showErrorMessage(`Could not invoke ${endpoint.name}`, (error as Error).message);
    }
  }
}
